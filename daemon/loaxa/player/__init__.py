"""Player: amplifier, chime and samples to the audio output."""
