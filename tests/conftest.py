"""Shared fixtures. The real components are started by the plugins in tests/support/."""

pytest_plugins = [
    "tests.support.mosquitto",
    "tests.support.influx",
    "tests.support.snmpsim",
    "tests.support.snmptrap",
    "tests.support.nut",
    "tests.support.modbus",
    "tests.support.alertmanager",
]
