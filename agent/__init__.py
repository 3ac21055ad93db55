"""kienco agent: measures a site and reports it over MQTT, as the wire contract (contract/) says."""

__version__ = "0.1.0"
