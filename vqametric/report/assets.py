"""The report's stylesheet and script (inline in the page; the script is vanilla JavaScript)."""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#222;
max-width:1100px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.row.summary{gap:48px}.summary>div{max-width:440px}.summary h2{margin-top:8px}
h3{font-size:15px;margin:0 0 6px;word-break:break-all}
dl.meta{display:grid;max-width:430px;grid-template-columns:max-content auto;gap:2px 14px;margin:0}dl.meta dt{color:#666}
dl.meta dd{margin:0}
table{border-collapse:collapse;width:100%}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;
vertical-align:top}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
#clips th{cursor:pointer;user-select:none;background:#f6f6f6;white-space:nowrap}
#clips th[aria-sort=ascending]::after{content:" \\25B2"}#clips th[aria-sort=descending]::after{content:" \\25BC"}
#filter{padding:4px 8px;width:280px;margin:0 0 8px;font:inherit}
tr.failed td{color:#a33}tr.no-score td{color:#a60}
.clip{border:1px solid #e2e2e2;border-radius:6px;padding:12px;margin:12px 0}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.explanation{color:#333;max-width:900px}
figure{margin:0;text-align:center;font-size:12px;color:#555}figure img{display:block;border:1px solid #ccc}
.placeholder{width:160px;height:90px;display:flex;align-items:center;justify-content:center;background:#f0f0f0;
color:#777;font-size:12px;border:1px dashed #bbb;padding:4px;box-sizing:border-box;text-align:center}
.muted{color:#777}
"""

JS = r"""
(function () {
  var table = document.getElementById("clips");
  if (!table) return;
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  function key(row, i, type) {
    var cell = row.cells[i], v = cell.getAttribute("data-v");
    if (v === null) v = cell.textContent;
    if (type === "num") { var x = parseFloat(v); return isNaN(x) ? null : x; }
    return v.toLowerCase();
  }
  function sortBy(i) {
    var th = heads[i], type = th.getAttribute("data-type") || "text";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    for (var k = 0; k < heads.length; k++) heads[k].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, i, type), y = key(b, i, type);
      if (x === y) return 0;
      if (x === null) return 1;   // missing values last, either way
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  for (var i = 0; i < heads.length; i++) {
    (function (i) {
      heads[i].addEventListener("click", function () { sortBy(i); });
      heads[i].addEventListener("keydown", function (e) { if (e.key === "Enter") sortBy(i); });
    })(i);
  }
  var filter = document.getElementById("filter"), count = document.getElementById("shown");
  function applyFilter() {
    var q = filter.value.trim().toLowerCase(), shown = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      var hit = !q || r.textContent.toLowerCase().indexOf(q) >= 0;
      r.hidden = !hit;
      shown += hit ? 1 : 0;
    });
    if (count) count.textContent = shown + " of " + body.rows.length;
  }
  filter.addEventListener("input", applyFilter);
  applyFilter();
})();
"""
