"""Speech: normalise → split → voice → cache, as a stream of sentence chunks."""
