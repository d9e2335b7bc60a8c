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
# # 1. Beetles: a big object with a small tell-tale part
#
# To see WSOL's central problem on a laptop we need a dataset where **a small part of the
# object is enough to classify it**, while the object itself is large. Real datasets have this
# property (a bird's head names its species), but they take hours to train on. So the book
# generates its own: 64×64 pictures of beetles, 8 classes.
#
# * Every beetle has the same body: a rotated ellipse with legs and a tail, brownish.
# * The **head** is a small disc in one of 8 saturated colours: it alone names the class.
# * The **body texture** (4 patterns: cross stripes, lengthwise stripes, checks, blocks,
#   chosen by `class mod 4`) is a *weak* second cue, with a strength we control:
#   `pattern_contrast`, the book's main teaching dial.
#
# A classifier will happily look at the head only. A localizer should box the whole beetle.

# %%
from itertools import pairwise

from IPython.display import display

import dgdm_lib
from dgdm_lib.data import BeetlesConfig, format_summary, load_beetles
from dgdm_lib.plotting import show_samples
from dgdm_lib.views.data import contrast_view, texture_strength
from dgdm_lib.widgets import check_redraw, float_slider, int_slider, slider_view

print(dgdm_lib.env_report())

# %% [markdown]
# ## The dataset
# The splits are generated on first use (a few seconds) and cached in the data folder with a
# manifest of their parameters and a content hash; a later call with other parameters
# regenerates instead of silently reusing. Train, val and test have their own seeds
# (4000 / 300 / 500 images).

# %%
train = load_beetles("train")
val = load_beetles("val")
test = load_beetles("test")
print(format_summary(train, "train"))
print(format_summary(test, "test"))

# %% [markdown]
# The numbers that make this a WSOL dataset are in the lines above: the object covers a small
# part of the image and its box a larger one, but the head, which is all a classifier needs, is
# only a small part of the object. The next cell checks that the generator still has that shape:
# object 10-20% of the image, box 30-45%, head 8-16% of the object.

# %%
shares = train.summary()
assert 0.10 < shares["object_share"] < 0.20, shares
assert 0.30 < shares["box_share"] < 0.45, shares
assert 0.08 < shares["head_share_of_mask"] < 0.16, shares
assert len(train) == 4000 and len(val) == 300 and len(test) == 500

# %% [markdown]
# ## Look at it
# Sixteen training images with their ground-truth boxes (red) and object masks (cyan tint).
# Labels are `index mod 8`, so the first eight show every class once.

# %%
show_samples(train.images[:16], boxes=train.boxes[:16], masks=train.masks[:16], labels=train.labels[:16],
             inclusive=True, title="Beetles: GT boxes (red), object masks (cyan)")

# %% [markdown]
# ## What can a network use?
# Two cues name the class: the head colour (strong, small) and the body texture (weak, large).
# The dial `pattern_contrast` sets the texture's amplitude around the body colour. We can
# measure how much texture there is to see, as the spread of grey levels inside the body:

# %%
contrasts = [0.0, 0.06, 0.09, 0.12]
strength = {c: texture_strength(c) for c in contrasts}
for c, s in strength.items():
    print(f"pattern_contrast {c:.2f}: body grey-level spread {s:5.1f} / 255")
assert all(strength[a] < strength[b] for a, b in pairwise(contrasts)), "texture must grow with contrast"

# %% [markdown]
# At contrast 0 the bodies of all classes are statistically the same: only the head
# identifies the class, and no training trick can make the body *evidence* for a class. With
# some contrast the body carries a weaker, larger cue: that is what erasing methods push a
# network to use. Move the slider: the top row is what the network sees, the bottom row what
# is left once the head is hidden.

# %% tags=["nbval-ignore-output"]
view = slider_view(contrast_view,
                   contrast=float_slider("contrast", 0.09, 0.0, 0.2, 0.01),
                   seed=int_slider("seed", 0, 0, 20))
display(view)

# %% [markdown]
# A slider must answer at once. The drawing function is plain Python, so we can time it
# without the widget: generating eight beetles and drawing them.

# %%
check_redraw(contrast_view, contrast=0.12, seed=3);

# %% [markdown]
# ## Context: a cue outside the object
# Real photos carry context: birds over water, cars on roads. `context_p` gives each image,
# with that probability, a background tied to its class ("water" for classes 0-3, "sand" for
# 4-7). A network can then be right for the wrong reason, and its CAM lands on the
# background. We use it in the exercises.

# %%
from dgdm_lib.data import generate_beetles

context = generate_beetles(8, seed=5, config=BeetlesConfig(context_p=1.0))
show_samples(context.images, boxes=context.boxes, labels=context.labels, inclusive=True,
             title="context_p = 1: classes 0-3 on water, 4-7 on sand")

# %% [markdown]
# ## Summary
# * The beetles dataset is built so that a classifier needs only a small part (the head, 8-16%
#   of the object) while the localization target is the whole object (its box, 30-45% of the
#   image).
# * `pattern_contrast` sets how much evidence the body carries; at 0 there is none.
# * Everything is generated from seeds, cached with a manifest, and takes seconds.
#
# ## Exercises
# 1. Generate the test split with `BeetlesConfig(pattern_contrast=0.0)` and look at 16
#    samples. Could *you* classify them with the heads hidden? *Hint:* `contrast_view(0.0)`.
# 2. Which classes share a body pattern? *Hint:* the pattern is `class mod 4`.
# 3. Train the chapter-02 network on `context_p=0.8` data and look at where its CAM goes.
#    *Hint:* `BeetleRun.of("cam", context_p=0.8)` in `dgdm_lib.experiments`.

# %% [markdown]
# ## Solutions
#
# ### Exercise 1: beetles without a texture, and without their heads
#
# The first 16 images of the test split generated at `pattern_contrast = 0`, with every head
# painted grey (`hide_heads`): what a network has left once the head is gone. The class is in
# each title; try to name it before you read it.

# %%
from dgdm_lib.data import split_seed
from dgdm_lib.views.data import hide_heads

flat = generate_beetles(16, seed=split_seed(0, "test"), config=BeetlesConfig(pattern_contrast=0.0))
show_samples(hide_heads(flat.images, flat.head_masks), boxes=flat.boxes, labels=flat.labels, inclusive=True,
             title="test split at pattern_contrast = 0, heads hidden: which class is each?")

# %% [markdown]
# No one can: the generator paints the body as `body colour + pattern_contrast * texture`, so at
# contrast 0 the texture term vanishes and every class gets a body, legs and a tail drawn the same
# way, from the same random colour jitter, sizes and angles (the slider above, set to contrast 0,
# shows it class by class). What is left is the head, and a network trained on these images has
# no reason to look anywhere else: erasing the head during training cannot make the body evidence
# for the class, because there is none.
#
# ### Exercise 2: which classes share a body pattern?
#
# The pattern is `PATTERNS[class mod 4]`, so classes `k` and `k + 4` share one:

# %%
from dgdm_lib.data import PATTERNS

sharing = {name: [k for k in range(8) if k % 4 == i] for i, name in enumerate(PATTERNS)}
for name, classes in sharing.items():
    print(f"{name:18s} classes {classes}")
assert all(len(classes) == 2 for classes in sharing.values())

# %% [markdown]
# So the body alone can at best narrow a beetle down to two classes: a network that ignored the
# head would be right at most half of the time. The head stays necessary, and the body is a
# *weaker* cue in two ways: fainter (the contrast) and less specific (two classes per pattern).
# That is the situation of real fine-grained data too, where the whole bird helps but the head
# settles the species.

# %% [markdown]
# ### Exercise 3: a network trained with context
#
# `BeetleRun.of("cam", context_p=0.8)` is chapter 02's network and recipe, trained on beetles of
# which 80% stand on their class's background. Training takes about a minute on a laptop's CPU, so
# the cell trains it in classroom mode; in quick mode (what the tests run) it only reads it back
# when an earlier run cached it (`make warm` does). It then asks two questions with chapter 02's
# tools, on test beetles with context and on plain test beetles: is the network still right, and
# where does its CAM's mass go (head, the rest of the body, background; `evaluate` reports the three
# shares, which add up to 100%)? Chapter 02's network, trained without context, is the yardstick
# when it is cached.

# %%
import dataclasses

from dgdm_lib.config import data_dir, quick_mode
from dgdm_lib.evaluation import evaluate
from dgdm_lib.experiments import BeetleRun, test_camset, trained_model
from dgdm_lib.views.cams import comparison_figure


def is_cached(run):
    """True when ``run``'s trained model is in the data folder (so using it costs no training)."""
    return (data_dir() / "models" / f"{run.key()}.pt").is_file()


context_run = BeetleRun.of("cam", context_p=0.8)
plain_run = BeetleRun.of("cam")  # chapter 02's network: no context in training
context_sets = {}
if quick_mode() and not is_cached(context_run):
    print("Quick mode and no cached context model: skipped (classroom mode trains it, as `make warm` does).")
else:
    context_net = trained_model(context_run)
    context_sets["context net, test with context"] = test_camset(context_run, model=context_net)
    context_sets["context net, plain test"] = test_camset(dataclasses.replace(context_run, context_p=0.0),
                                                          model=context_net)
    if is_cached(plain_run):
        context_sets["chapter 02 net, plain test"] = test_camset(plain_run)
for name, camset in context_sets.items():
    m = evaluate(camset)
    head_area = 100 * camset.head_masks.mean()
    body_area = 100 * camset.masks.mean() - head_area
    print(f"{name}: Top-1 {m['top1_clas']:.1f}%, GT-known Loc at tau 0.2 {m['gt_known_loc@0.2']:.1f}%\n"
          f"  share of the CAM's mass: head {m['head_share']:4.1f}%, body {m['body_share']:4.1f}%, "
          f"background {m['background_share']:4.1f}%\n"
          f"  share of the image area: head {head_area:4.1f}%, body {body_area:4.1f}%, "
          f"background {100 - head_area - body_area:4.1f}%")

# %%
if context_sets:
    display(comparison_figure({"context net": context_sets["context net, test with context"]}, n=8, tau=0.2,
                              title="Trained with context_p = 0.8: test beetles with context, GT red, tau 0.2 box green"))

# %% [markdown]
# Read each share of the CAM's mass against the share of the image it covers. The head covers a
# tiny part of the image but holds several times that share of the mass; the background covers
# most of the image and holds less than its share. So the network trained with context still
# looks at the head, on beetles with context and on plain ones, as the figure shows image by image,
# and it is right on the plain beetles too (the Top-1 of the second line): it never came to depend
# on the water or the sand. The reason is in how the generator ties them to the classes: a
# background names only half a class (water: one of classes 0-3), the head names the class, and a
# network that must tell class 0 from class 1 needs the head anyway. Context misleads a CAM when it
# is an easier cue that is enough on its own; chapter 09 lets you look for that in real photographs
# (the water around a sea bird, the sky around a flying one).
