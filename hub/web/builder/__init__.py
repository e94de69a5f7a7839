"""The flow builder: the page, its graph model, layout and canvas."""
