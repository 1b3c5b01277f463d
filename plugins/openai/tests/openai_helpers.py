"""Helpers shared by the OpenAI dialect tests."""

MODEL = "ai/smollm2"
