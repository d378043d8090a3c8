"""The captioning gallery: one HTML page (``rnnlab.io.page.Page``) with the metrics,
and per image the picture, the generated and the reference captions and, for
the attention decoder, one overlay per generated word (where it looked).
matplotlib is imported here only (the ``plot`` extra).
"""
import os
import tempfile

import numpy as np

from rnnlab.caption import evaluate
from rnnlab.io.figures import pyplot as _plt
from rnnlab.io.page import Page


def overlay_figure(path, image, caption, alphas, grid, per_row=8):
    """image, then one panel per word with its attention map (upsampled) on top;
    one colour scale per caption, so a flat map looks dark and a peak bright."""
    plt = _plt()
    words = caption.split()
    n = 1 + (len(words) if alphas is not None else 0)
    rows, cols = -(-n // per_row), min(n, per_row)
    fig, axes = plt.subplots(rows, cols, figsize=(1.35 * cols, 1.5 * rows), squeeze=False)
    axes = axes.ravel()
    axes[0].imshow(image, interpolation="nearest")
    axes[0].set_title("image", fontsize=8)
    top = max((float(a.max()) for a in alphas), default=1.0) if alphas is not None else 1.0
    for k in range(1, n):
        up = np.kron(alphas[k - 1].reshape(grid, grid), np.ones((image.shape[0] // grid,) * 2))
        axes[k].imshow(image, interpolation="nearest")
        axes[k].imshow(up, cmap="magma", alpha=0.65, vmin=0, vmax=top, interpolation="bilinear")
        axes[k].set_title(words[k - 1], fontsize=8)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    for ax in axes[n:]:
        ax.axis("off")
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write(out, mcfg, params, vocab, scenes_, beam=0, name="checkpoint"):
    r, caps, maps = evaluate.report(mcfg, params, vocab, scenes_, beam)
    page = Page(f"rnnlab caption gallery: {os.path.basename(name)}")
    page.text(f"{mcfg.decoder} decoder, {len(scenes_)} generated images, "
              + (f"beam {beam}" if beam else "greedy decoding")
              + ". The encoder is a small CNN trained from random weights with the decoder "
                "(no pretrained network is available offline).")
    page.pre(evaluate.format_report(r))
    page.heading("Images, captions and attention")
    if maps is not None:
        page.text("Each panel after the image shows where the decoder looked (brighter: "
                  f"more attention over the {mcfg.grid} x {mcfg.grid} feature grid) when it "
                  "emitted the word above it.")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (s, c) in enumerate(zip(scenes_, caps)):
            ok = "correct" if c in s.captions else "WRONG"
            png = overlay_figure(os.path.join(tmp, f"{i}.png"), s.image, c,
                                 None if maps is None else maps[i], mcfg.grid)
            page.figure(png, f"generated ({ok}): {c}   |   references: "
                        + " / ".join(s.captions[:3]) + (" ..." if len(s.captions) > 3 else ""))
        page.write(out)
    return out
