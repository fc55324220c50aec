/* multi.c: libcurl multi on libevent (not written yet). */
