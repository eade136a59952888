"""`loaxa bench`: our pipeline against piper-tts and a bare onnxruntime loop.

Each engine runs in its own child process (`python -m loaxa.bench.child`)
so that peak RSS is measured fairly; `runner` collects, prints and plots.
"""
