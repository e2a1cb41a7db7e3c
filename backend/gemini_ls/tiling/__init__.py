"""Tiling of large photos for spatial controls: the grid (grid.py) and the merge of the tiles'
answers back on the image (merge.py). Pure geometry: no I/O, no Gemini, no Label Studio."""
