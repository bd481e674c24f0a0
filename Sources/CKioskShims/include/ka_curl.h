#ifndef KA_CURL_H
#define KA_CURL_H
#include <curl/curl.h>
#include <stddef.h>

/// curl_easy_setopt for long-valued options.
static inline CURLcode ka_curl_easy_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
/// curl_easy_setopt for string-valued options (libcurl copies the string).
static inline CURLcode ka_curl_easy_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
/// curl_easy_setopt for pointer-valued options (userdata, slists, buffers).
static inline CURLcode ka_curl_easy_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
/// curl_easy_setopt for curl_off_t-valued options.
static inline CURLcode ka_curl_easy_setopt_off_t(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }

/// Signature of a libcurl write/header callback.
typedef size_t (*ka_curl_write_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
/// curl_easy_setopt for write/header callbacks.
static inline CURLcode ka_curl_easy_setopt_write_cb(CURL *h, CURLoption o, ka_curl_write_cb cb) { return curl_easy_setopt(h, o, cb); }

/// curl_easy_getinfo for long-valued info.
static inline CURLcode ka_curl_easy_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
/// curl_easy_getinfo for double-valued info.
static inline CURLcode ka_curl_easy_getinfo_double(CURL *h, CURLINFO i, double *v) { return curl_easy_getinfo(h, i, v); }
/// curl_easy_getinfo for curl_off_t-valued info.
static inline CURLcode ka_curl_easy_getinfo_off_t(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }

/// Option constants that are enum members in C but convenient as typed values in Swift.
static const CURLoption KA_CURLOPT_URL = CURLOPT_URL;
static const CURLoption KA_CURLOPT_POSTFIELDS = CURLOPT_POSTFIELDS;
static const CURLoption KA_CURLOPT_POSTFIELDSIZE_LARGE = CURLOPT_POSTFIELDSIZE_LARGE;
static const CURLoption KA_CURLOPT_HTTPHEADER = CURLOPT_HTTPHEADER;
static const CURLoption KA_CURLOPT_WRITEFUNCTION = CURLOPT_WRITEFUNCTION;
static const CURLoption KA_CURLOPT_WRITEDATA = CURLOPT_WRITEDATA;
static const CURLoption KA_CURLOPT_HEADERFUNCTION = CURLOPT_HEADERFUNCTION;
static const CURLoption KA_CURLOPT_HEADERDATA = CURLOPT_HEADERDATA;
static const CURLoption KA_CURLOPT_SSLCERT = CURLOPT_SSLCERT;
static const CURLoption KA_CURLOPT_SSLKEY = CURLOPT_SSLKEY;
static const CURLoption KA_CURLOPT_CAINFO = CURLOPT_CAINFO;
static const CURLoption KA_CURLOPT_PINNEDPUBLICKEY = CURLOPT_PINNEDPUBLICKEY;
static const CURLoption KA_CURLOPT_PROXY = CURLOPT_PROXY;
static const CURLoption KA_CURLOPT_CONNECTTIMEOUT_MS = CURLOPT_CONNECTTIMEOUT_MS;
static const CURLoption KA_CURLOPT_TIMEOUT_MS = CURLOPT_TIMEOUT_MS;
static const CURLoption KA_CURLOPT_NOSIGNAL = CURLOPT_NOSIGNAL;
static const CURLoption KA_CURLOPT_ERRORBUFFER = CURLOPT_ERRORBUFFER;
static const CURLoption KA_CURLOPT_POST = CURLOPT_POST;
static const CURLoption KA_CURLOPT_HTTPGET = CURLOPT_HTTPGET;
static const CURLoption KA_CURLOPT_SSL_VERIFYPEER = CURLOPT_SSL_VERIFYPEER;
static const CURLoption KA_CURLOPT_SSL_VERIFYHOST = CURLOPT_SSL_VERIFYHOST;
static const CURLoption KA_CURLOPT_TCP_KEEPALIVE = CURLOPT_TCP_KEEPALIVE;
static const CURLoption KA_CURLOPT_MAXFILESIZE_LARGE = CURLOPT_MAXFILESIZE_LARGE;
static const CURLoption KA_CURLOPT_RESOLVE = CURLOPT_RESOLVE;
static const CURLoption KA_CURLOPT_NOPROXY = CURLOPT_NOPROXY;
static const CURLINFO KA_CURLINFO_RESPONSE_CODE = CURLINFO_RESPONSE_CODE;
static const CURLINFO KA_CURLINFO_NUM_CONNECTS = CURLINFO_NUM_CONNECTS;
#endif
