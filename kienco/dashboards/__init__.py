"""Grafana dashboards as code (the Grafana Foundation SDK), built into ``dashboards/``.

``kienco dashboards build`` (kienco/commands/dashboards.py) imports these modules; nothing
else does, so the SDK stays a development dependency (the ``dashboards`` extra), never
an edge box's. ``macros`` alone needs no SDK: it is what Grafana does to a query.
"""
