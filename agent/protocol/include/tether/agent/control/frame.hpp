#pragma once
// Control protocol v1 framing (DESIGN.md "Control protocol, version 1"): a 4-byte little-endian
// length N (1 to 1,048,576), then N bytes of one UTF-8 JSON object.
//
// The decoder is incremental: bytes arrive as the socket hands them over, so a frame may be split
// across reads and one read may carry many frames. It never throws (it runs on the event loop).
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tether::agent::control {

inline constexpr uint32_t kMaxFrameLength = 1'048'576;
inline constexpr size_t kFrameHeaderSize = 4;

// The error codes of an `error` message. The first four are DESIGN.md's; `cancelled` and
// `conflict` are our extensions for a refused `register` (the id was cancelled and is
// tombstoned; the id is already registered). Unknown codes read as BadMessage.
enum class ErrorCode { BadFrame, BadMessage, Forbidden, UnknownType, Cancelled, Conflict };

std::string_view errorCodeName(ErrorCode code);
bool parseErrorCode(std::string_view name, ErrorCode& out);

// A decoding or validation failure: the code and a short phrase for the `error` reply.
struct ProtocolError {
  ErrorCode code = ErrorCode::BadFrame;
  std::string message;
};

// Serializes `object` and prepends the length. Invalid UTF-8 in strings is replaced (U+FFFD)
// rather than thrown about: ids may come from HTTP headers we do not control. Returns an empty
// string if the payload would exceed kMaxFrameLength (the caller treats that as a drop).
std::string encodeFrame(const nlohmann::json& object);

// Frames an already-serialized payload as is (tests use it to send what a broken peer sends).
std::string encodeRawFrame(std::string_view payload);

class FrameDecoder {
 public:
  enum class Result {
    NeedMore,  // no complete frame buffered; feed more bytes
    Frame,     // `out` holds the next JSON object
    Error,     // `error` says why; the stream cannot be resynchronized, close it
  };

  explicit FrameDecoder(uint32_t max_length = kMaxFrameLength) : max_length_(max_length) {}

  // Appends bytes read from the stream. Cheap: call next() until it says NeedMore.
  void feed(std::string_view bytes);

  // Takes the next frame. A length out of range is reported as soon as the 4 header bytes are
  // in (without waiting for the body); bad JSON or a non-object is reported when the body is
  // complete. After an Error every later call returns Error again.
  Result next(nlohmann::json& out, ProtocolError& error);

  // Bytes fed but not yet consumed by next().
  size_t buffered() const { return buffer_.size() - offset_; }
  bool failed() const { return failed_; }

 private:
  std::string buffer_;
  size_t offset_ = 0;
  uint32_t max_length_;
  bool failed_ = false;
  ProtocolError failure_;
};

}  // namespace tether::agent::control
