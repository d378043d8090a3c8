"""A self-contained HTML page for a run: headings, text, tables, figures, audio.

Every application writes its page with this one builder, so they look alike and
open offline: styles inline, PNG and WAV files embedded as base64 data.

    >>> p = Page("demo run")
    >>> _ = p.table([["JSB", 8.51]], header=["set", "NLL"]).text("lower is better")
    >>> "<td>8.51</td>" in p.html()
    True
"""
import base64
import html
import math

from rnnlab.io.atomic import atomic_write

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}
figure{margin:1.5em 0}figcaption{color:#555;font-size:90%}pre{background:#f6f6f6;padding:.6em}
.gallery{display:flex;flex-wrap:wrap;gap:1em}.gallery figure{margin:0;max-width:260px}"""


def cell(v, spec=".4g"):
    """A table cell's text: floats formatted, None as a dash, NaN and inf spelled out."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return str(v) if not math.isfinite(v) else format(v, spec)
    return str(v)


def embed(path, mime):
    with open(path, "rb") as f:
        return f"data:{mime};base64," + base64.b64encode(f.read()).decode("ascii")


class Page:
    """Build with chained calls, then ``write(path)`` (atomic)."""

    def __init__(self, title):
        self.title, self.parts = title, [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text, level=2):
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def text(self, text):
        self.parts.append(f"<p>{html.escape(text)}</p>")
        return self

    def pre(self, text):
        self.parts.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def table(self, rows, header=None, spec=".4g"):
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header or ())
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(v, spec))}</td>" for v in r)
                       + "</tr>" for r in rows)
        self.parts.append(f"<table>{'<tr>' + head + '</tr>' if head else ''}{body}</table>")
        return self

    def figure(self, png_path, caption=""):
        self.parts.append(f'<figure><img src="{embed(png_path, "image/png")}" '
                          f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
                          "</figcaption></figure>")
        return self

    def audio(self, wav_path, caption=""):
        self.parts.append(f'<figure><audio controls src="{embed(wav_path, "audio/wav")}">'
                          f"</audio><figcaption>{html.escape(caption)}</figcaption></figure>")
        return self

    def gallery(self, items):
        """items: (png path, caption) pairs, laid out side by side."""
        figs = "".join(f'<figure><img src="{embed(p, "image/png")}" alt="{html.escape(c)}">'
                       f"<figcaption>{html.escape(c)}</figcaption></figure>" for p, c in items)
        self.parts.append(f'<div class="gallery">{figs}</div>')
        return self

    def raw(self, fragment):
        """Trusted HTML made by rnnlab itself (never user text)."""
        self.parts.append(fragment)
        return self

    def html(self):
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>"
                f"{html.escape(self.title)}</title><style>{STYLE}</style></head><body>"
                + "\n".join(self.parts) + "</body></html>")

    def write(self, path):
        with atomic_write(path) as f:
            f.write(self.html())
        return path
