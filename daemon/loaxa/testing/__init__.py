"""Helpers for loaxa's tests and soak scripts: real brokers, station processes, fake devices.

Installed with loaxa so scripts and tests share one copy. Importing a module
here needs only loaxa's own dependencies; `tinyvoice` needs `onnx` (the
`test` extra) only when it writes a voice.

    loaxa.testing.broker     Mosquitto on a free loopback port
    loaxa.testing.station    a station daemon in a child process; Operator, Province
    loaxa.testing.audio      FifoSpeaker and readers of what a station played
    loaxa.testing.tinyvoice  tiny Piper-format voices that spell out their input
    loaxa.testing.soak       the kill -9 and broker-outage soaks
    loaxa.testing.attack     the attack soak: hostile commands with kill -9 and broker restarts
    loaxa.testing.province_broker  the shipped broker config with the generated ACL
    loaxa.testing.amplifier  RecordingAmplifier, a fake relay
"""
