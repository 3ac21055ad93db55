"""The readiness board: the collector's web pages for the NOC, provincial IT and the ministry.

    routes.py   the pages, forms, downloads and the live stream (FastAPI, on collector/web/)
    pages.py    each page for one viewer: what it shows and what it may not
    views.py    what the pages show, worked out from verdicts and sites (pure)
    texts.py    every word, in Vietnamese and English
    render.py   Jinja2, autoescaped; live parts cached per change
    live.py     which sites changed (the collector tells), for the open pages
    stream.py   a page's server-sent events
    history.py  a site's last hours from InfluxDB; charts.py draws them as SVG
    templates/, static/  the pages; htmx (vendored), the board's CSS and script

Imports nothing heavy here: collector/service.py imports live.py and ports.py.
"""
