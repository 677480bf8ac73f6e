// Fuzz target: HTTP/2 frames from a client socket into the capture proxy's HTTP/2 session
// (recorder/h2_session.cc), in process: the http_request harness (its recorders, upstream and
// properties) with the client preface in front of every input, and the proxy's answer
// required to start with its SETTINGS frame. See http_request.cc.
#define DOPPEL_FUZZ_H2 1
#include "tests/fuzz/http_request.cc"
