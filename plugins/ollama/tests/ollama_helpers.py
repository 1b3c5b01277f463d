"""Constants shared by the Ollama tests."""

MODEL = "ai/smollm2"
# keep answers short: two CPU cores
SHORT = {"num_predict": 16, "temperature": 0, "seed": 42}
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
