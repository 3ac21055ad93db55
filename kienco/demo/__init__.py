"""The simulated fleet for ``kienco demo``: a storm scenario (data) and sites that report."""
