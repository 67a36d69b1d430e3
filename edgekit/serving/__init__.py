"""`edgekit serve`: the model as a local OpenAI-compatible service on llama.cpp's own llama-server."""
