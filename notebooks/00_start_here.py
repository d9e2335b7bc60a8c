# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 0. Start here: where is the object?
#
# An image classifier trained on "this is a beetle of species 3" never sees a box. Yet it
# must look *somewhere* to decide, and that somewhere can be read back out of the network.
# **Weakly supervised object localization (WSOL)** asks how well: given image-level labels
# only, draw a box around the whole object.
#
# The classic tool is the **class activation map (CAM)** (Zhou et al., 2016): weight the last
# convolutional feature maps by the classifier's weights for a class, and you get a heat map
# of where the evidence for that class sits. Threshold it and you get a box.
#
# The catch, and the subject of this book: a classifier only needs the *most discriminative*
# part. A bird's head, a car's grille, or in our dataset a beetle's coloured head. CAM then
# boxes the head and misses the body. **Erasing** methods fix this by hiding the most
# discriminative part during training, so the network must learn to use the rest:
#
# * **ADL** (Choe & Shim, 2019) drops the most attended *pixels* of a feature map at random;
# * **CAGD** (Yin et al., 2020) drops the least important *channels*;
# * **SAGD** (Yin et al., 2020) drops whole *blocks* around the most discriminative region and
#   the background;
# * **DGDM** is CAGD followed by SAGD: the paper's dual-attention guided dropblock module.
#
# Every chapter builds one idea with the small library `dgdm_lib`, looks at it, measures it
# with a stated seed, and lets you move a slider.

# %% [markdown]
# ## Your environment
# The next cell prints versions, the device the book will use (a GPU if there is one) and the
# mode. In **quick** mode (`DGDM_QUICK=1`, set by the tests and by CI) every chapter runs the
# same code and trains the same models, but measures them on fewer test images (300 instead of
# 500); **classroom** mode is the default. `DGDM_SEED_OFFSET=1` shifts every seed by one, to see
# which findings survive another seed.

# %%
import dgdm_lib
from dgdm_lib.config import get_device, mode_name

print(dgdm_lib.env_report())
assert mode_name() in {"quick", "classroom"}
assert get_device().type in {"cpu", "cuda"}

# %% [markdown]
# ## The map of the book
#
# | chapter | idea | you will see |
# |---|---|---|
# | 01 beetles | the dataset: big object, small tell-tale head | what a network can and cannot use |
# | 02 CAM | train a classifier, read its CAM, turn it into a box | boxes around the head only |
# | 03 ADL | attention-based dropout of the hottest pixels | boxes grow |
# | 04 CAGD | channel attention guided dropout | which channels survive |
# | 05 SAGD | spatial attention guided drop*block* | block masks vs pixel masks |
# | 06 DGDM | CAGD + SAGD, trained, with the paper's ablation | CAM vs ADL vs DGDM over seeds |
# | 07 evaluating right | fixed threshold vs MaxBoxAcc and PxAP | what erasing really changes |
# | 08 real data | CUB-200-2011, Stanford Cars, ILSVRC from a local folder | the same pipeline at scale |
# | 09 real photos | a pretrained Lite0 on ImageNet photos; CAM, ADL, SAGD, DGDM fine-tuned on birds | WSOL on real images, on a CPU |
#
# Chapters 02 to 07 train small networks on the CPU in under a minute each and cache them in the
# data folder (`DGDM_DATA`, default `data/`), so a re-run or a later chapter reuses them.

# %%
from pathlib import Path

chapters = sorted(p.name for p in Path(".").glob("[0-9][0-9]_*.py"))
print("\n".join(chapters))
assert chapters and chapters[0].startswith("00_"), "run this notebook from the notebooks/ folder"

# %% [markdown]
# ## Summary
# * WSOL localizes with image labels only; CAM is its basic tool.
# * CAM finds the most discriminative part, not the whole object.
# * Erasing the discriminative part during training (ADL, CAGD, SAGD, DGDM) pushes the network
#   to use the whole object. How much it helps, and where it does not, is measured in chapters
#   06 and 07.
#
# ## Exercises
# 1. Run `DGDM_SEED_OFFSET=1 make book` and compare chapter 06's table with the default seed's.
#    Which differences are larger than the spread the three-seed benchmark reports?
#    *Hint:* `docs/results.md`; `build/book_times.json` has the run times.
# 2. Where would the "most discriminative part" be for a dataset of cars? Of dogs?
