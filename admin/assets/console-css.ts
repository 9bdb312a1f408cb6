/** The console's stylesheet, served from /admin/assets/console.css (a module, so the build carries it). */
export const CONSOLE_CSS = `:root{--fg:#1d232b;--muted:#5b6570;--line:#d8dde3;--bg:#f6f7f9;--ok:#1a7f37;--bad:#b42318;--warn:#9a6700;--accent:#2457c5}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;align-items:center;gap:1rem;padding:.6rem 1.2rem;background:#fff;border-bottom:1px solid var(--line)}
.brand{font-weight:700;color:var(--fg);text-decoration:none}
nav{display:flex;gap:.2rem;flex-wrap:wrap}
nav a{padding:.3rem .6rem;border-radius:6px;color:var(--fg);text-decoration:none}
nav a[aria-current=page]{background:var(--accent);color:#fff}
.signout{margin-left:auto;color:var(--muted)}
main{max-width:72rem;margin:0 auto;padding:1rem 1.2rem 3rem}
h1{font-size:1.5rem;margin:.6rem 0 1rem}h2{font-size:1.15rem;margin:1.6rem 0 .6rem}h3{font-size:1rem}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line);font-size:.9rem}
th,td{text-align:left;padding:.35rem .55rem;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:break-word}
td{max-width:28rem}
th{background:#eef1f4;font-weight:600}
code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;background:#eef1f4;padding:.05rem .3rem;border-radius:4px;overflow-wrap:anywhere}
.ok{color:var(--ok);font-weight:600}.missing{color:var(--bad);font-weight:600}.unknown{color:var(--warn)}
.checklist{list-style:none;padding:0}.checklist li{background:#fff;border:1px solid var(--line);border-left:5px solid var(--warn);margin:.4rem 0;padding:.5rem .8rem;font-weight:400}
.checklist li.ok{border-left-color:var(--ok);color:var(--fg)}.checklist li.missing{border-left-color:var(--bad);color:var(--fg)}
.checklist li.ok strong::before{content:"✓ ";color:var(--ok)}.checklist li.missing strong::before{content:"✗ ";color:var(--bad)}
.fix{margin-top:.25rem;color:var(--muted)}
dl.copy{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;background:#fff;border:1px solid var(--line);padding:.8rem}
dl.copy dt{font-weight:600}dl.copy dd{margin:0}
.chart{background:#fff;border:1px solid var(--line);margin:.6rem 0;padding:.6rem}
.chart figcaption{font-weight:600;margin-bottom:.3rem}
.chart svg{width:100%;height:auto;max-height:240px}
.chart .axis{stroke:#9aa4ae;stroke-width:1}.chart text{font-size:11px;fill:var(--muted)}
.chart polyline{fill:none;stroke-width:1.8}.chart circle{stroke:none}
.s0 polyline{stroke:#2457c5}.s0 circle{fill:#2457c5}.s1 polyline{stroke:#c54f24}.s1 circle{fill:#c54f24}.s2 polyline{stroke:#1a7f37}.s2 circle{fill:#1a7f37}
.s3 polyline{stroke:#8250df}.s3 circle{fill:#8250df}.s4 polyline{stroke:#9a6700}.s4 circle{fill:#9a6700}.s5 polyline{stroke:#0b7285}.s5 circle{fill:#0b7285}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:1rem;padding:0;margin:.3rem 0 0;font-size:.85rem}
.legend li::before{content:"";display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px;border-radius:2px;background:currentColor}
.legend .s0{color:#2457c5}.legend .s1{color:#c54f24}.legend .s2{color:#1a7f37}.legend .s3{color:#8250df}.legend .s4{color:#9a6700}.legend .s5{color:#0b7285}
.unavailable{background:#fff4e5;border:1px solid #f0c36d;padding:.5rem .8rem}
.empty,.note{color:var(--muted)}
.error{background:#fdecea;border:1px solid #f1a7a0;padding:.5rem .8rem}
.created{background:#e9f6ec;border:1px solid #9fd3ab;padding:.6rem .8rem;margin-bottom:1rem}
.created code{display:block;font-size:14px;padding:.4rem;margin-top:.3rem;user-select:all}
form.filters,form.create{display:flex;flex-wrap:wrap;gap:.6rem;align-items:flex-end;background:#fff;border:1px solid var(--line);padding:.7rem}
form.filters label,form.create label{display:flex;flex-direction:column;font-size:.8rem;color:var(--muted)}
input,select{font:inherit;padding:.3rem .4rem;border:1px solid #b8c0c8;border-radius:5px;min-width:9rem}
button{font:inherit;padding:.3rem .8rem;border:1px solid var(--accent);background:var(--accent);color:#fff;border-radius:5px;cursor:pointer}
button.danger{background:#fff;color:var(--bad);border-color:var(--bad)}
.signout button{background:#fff;color:var(--fg);border-color:var(--line)}
td form{margin:0}
.lead{font-size:1.05rem}
`;
