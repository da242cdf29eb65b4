/*
 * http_page.h - the web page served at GET / (src/http/page/index.html),
 * embedded at build time by cmake/embed.cmake into a generated C file.
 */
#ifndef WBMB_HTTP_PAGE_H
#define WBMB_HTTP_PAGE_H

#include <stddef.h>

extern const unsigned char http_page_index_html[];
extern const size_t http_page_index_html_len;

#endif
