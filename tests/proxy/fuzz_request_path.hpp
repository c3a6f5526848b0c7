#pragma once
// Feeds bytes into tether-proxy's request path in-process: a Proxy on its own loop, listening on
// a unix socket, proxying to a tiny upstream on the same loop. Each input arrives on a fresh
// client connection (then end of file); afterwards a well-formed request on a long-lived
// connection must still be answered ("other connections keep working").
#include <cstddef>
#include <cstdint>

namespace tether::proxy::test {

// Returns 0; crashes (abort) if the proxy stopped answering the well-formed request.
int fuzzRequestPath(const uint8_t* data, size_t size);

// The same for HTTP/2: the input follows the connection preface on an `http2 on` server, so
// it reaches nghttp2's frame layer and the streams (HEADERS, DATA, RST_STREAM, GOAWAY, ...).
int fuzzHttp2Path(const uint8_t* data, size_t size);

}  // namespace tether::proxy::test
