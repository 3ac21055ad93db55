"""kienco agent: measures a site and reports it over MQTT. Owns the wire contract."""

__version__ = "0.1.0"
