/* openai.c: OpenAI surface (not written yet). */
