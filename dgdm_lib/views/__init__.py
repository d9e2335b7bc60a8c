"""The pure drawing functions behind the book's sliders: values in, a matplotlib ``Figure`` out.

They are tested without widgets; ``dgdm_lib.widgets.slider_view`` connects them to sliders.
One file per topic: ``data`` (chapter 01), ``cams`` (CAMs and boxes, chapters 02-07),
``attention`` (the modules' masks, chapters 03-05).
"""
