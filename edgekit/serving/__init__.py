"""`edgekit serve`: the model as a local OpenAI-compatible service on llama.cpp's llama-server."""
