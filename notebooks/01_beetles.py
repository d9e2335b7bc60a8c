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
# The numbers that make this a WSOL dataset: the object covers about 15% of the image and its
# box about 37%, but the head, which is all a classifier needs, is only about 12% of the
# object. The next cell checks that the generator still has that shape.

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
assert all(strength[a] < strength[b] for a, b in zip(contrasts, contrasts[1:])), "texture must grow with contrast"

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
# * The beetles dataset is built so that a classifier needs only a small part (the head, ~12%
#   of the object) while the localization target is the whole object (box ~37% of the image).
# * `pattern_contrast` sets how much evidence the body carries; at 0 there is none.
# * Everything is generated from seeds, cached with a manifest, and takes seconds.
#
# ## Exercises
# 1. Generate the test split with `BeetlesConfig(pattern_contrast=0.0)` and look at 16
#    samples. Could *you* classify them with the heads hidden? *Hint:* `contrast_view(0.0)`.
# 2. Which classes share a body pattern? *Hint:* the pattern is `class mod 4`.
# 3. Train the chapter-02 network on `context_p=0.8` data and look at where its CAM goes.
#    *Hint:* `BeetleRun.of("cam", context_p=0.8)` in `dgdm_lib.experiments`.
