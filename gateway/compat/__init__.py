"""Foreign API surfaces (OpenAI, Anthropic) translated at the edge into Gemini calls on the same relay."""
