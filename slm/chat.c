/* chat.c: chat templates (not written yet). */
