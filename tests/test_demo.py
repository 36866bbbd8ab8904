"""The demo's generated clips really are degraded, and `vqametric demo` runs end to end."""
import numpy as np

import vqametric
from vqametric import cli, demo


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def test_demo_clips_are_ordered_by_fidelity(tmp_path):
    clips = demo.make_demo_clips(str(tmp_path), num_frames=12, height=144, width=256)
    source = list(demo.scene_frames(12, 144, 256))
    psnr = {}
    for name, path in clips.items():
        with vqametric.open_clip(path) as c:
            assert c.info.num_frames == 12 and (c.info.width, c.info.height) == (256, 144)
            from vqametric.sampling.reference import frames_to_rgb
            got = (frames_to_rgb(c.read(range(12))) * 255).round().permute(0, 2, 3, 1).numpy()
        psnr[name] = _psnr(got, np.stack(source))
    # 4:2:0 subsampling of the scene's fine colour texture caps RGB PSNR near 26 dB even at CRF 18
    assert psnr["pristine (crf 18)"] > psnr["compressed (crf 45)"] + 3
    assert psnr["pristine (crf 18)"] > psnr["downscaled x0.25 + crf 30"] + 3


def test_demo_command_with_untrained_head(tmp_path, monkeypatch, capsys):
    small = demo.make_demo_clips
    monkeypatch.setattr(demo, "make_demo_clips", lambda folder: small(folder, 8, 96, 160))
    assert cli.main(["demo", "--untrained-head", "--folder", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "NOT quality estimates" in out.err
    assert out.out.count("\n") >= 6 and "stutter (frames doubled)" in out.out


def test_demo_command_with_the_default_model(tmp_path, monkeypatch, capsys):
    small = demo.make_demo_clips
    monkeypatch.setattr(demo, "make_demo_clips", lambda folder: small(folder, 16, 360, 640))
    assert cli.main(["demo", "--folder", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    from vqametric.registry import DEFAULT_MODEL, get_card
    assert f"vqametric-fast {get_card(DEFAULT_MODEL).version} (onnx)" in out
    rows = {line[:27].strip(): float(line[27:40]) for line in out.splitlines()[3:]}
    for degraded in ("compressed (crf 45)", "downscaled x0.25 + crf 30", "stutter (frames doubled)"):
        assert rows["pristine (crf 18)"] > rows[degraded], (degraded, rows)


def test_repeatable_encodes_give_the_same_file_at_any_width(tmp_path):
    # 300 px wide: chroma rows of 150 bytes, where x264's AVX-512 code varied from run to run
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:120, 0:300]
    base = np.stack([(x + y) % 256, (2 * x) % 256, (3 * y) % 256], -1).astype(np.float32)
    frames = [np.clip(np.roll(base, 2 * i, 1) + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
              for i in range(24)]
    files = [demo.encode(frames, str(tmp_path / f"{k}.mp4"), crf=26, preset="medium", threads=1, repeatable=True)
             for k in range(3)]
    data = [open(f, "rb").read() for f in files]
    assert data[0] == data[1] == data[2]
    assert vqametric.score(files[0]).clip["num_frames"] == 24
