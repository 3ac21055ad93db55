"""The fleet simulator: many simulated sites over real MQTT connections (``kienco simulate``)."""
