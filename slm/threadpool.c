/* threadpool.c: thread pool (not written yet). */
