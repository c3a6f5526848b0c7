#include "tether/agent/control/frame.hpp"

#include "name_table.hpp"

namespace tether::agent::control {
namespace {

constexpr std::array<detail::Named<ErrorCode>, 6> kCodeNames{{
    {ErrorCode::BadFrame, "bad_frame"},
    {ErrorCode::BadMessage, "bad_message"},
    {ErrorCode::Forbidden, "forbidden"},
    {ErrorCode::UnknownType, "unknown_type"},
    {ErrorCode::Cancelled, "cancelled"},
    {ErrorCode::Conflict, "conflict"},
}};

std::string lengthPrefix(size_t n) {
  std::string out(kFrameHeaderSize, '\0');
  for (size_t i = 0; i < kFrameHeaderSize; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

}  // namespace

std::string_view errorCodeName(ErrorCode code) { return detail::nameOf(kCodeNames, code, "bad_message"); }

bool parseErrorCode(std::string_view name, ErrorCode& out) { return detail::valueOf(kCodeNames, name, out); }

std::string encodeFrame(const nlohmann::json& object) {
  // `replace` keeps dump() from throwing on invalid UTF-8 (a type_error on the event loop).
  std::string payload = object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (payload.empty() || payload.size() > kMaxFrameLength) return {};
  return encodeRawFrame(payload);
}

std::string encodeRawFrame(std::string_view payload) {
  std::string out = lengthPrefix(payload.size());
  out.append(payload);
  return out;
}

void FrameDecoder::feed(std::string_view bytes) {
  if (failed_) return;
  // Drop what next() consumed before growing, so a long-lived connection's buffer stays at
  // about one frame instead of everything it ever received.
  if (offset_ > 0 && (offset_ == buffer_.size() || offset_ >= 64 * 1024)) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(bytes);
}

FrameDecoder::Result FrameDecoder::next(nlohmann::json& out, ProtocolError& error) {
  if (failed_) {
    error = failure_;
    return Result::Error;
  }
  const size_t available = buffer_.size() - offset_;
  if (available < kFrameHeaderSize) return Result::NeedMore;
  const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data() + offset_);
  const uint32_t length = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                          (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
  auto fail = [&](std::string message) {
    failed_ = true;
    failure_ = ProtocolError{ErrorCode::BadFrame, std::move(message)};
    error = failure_;
    buffer_.clear();
    offset_ = 0;
    return Result::Error;
  };
  // Checked before the body arrives: a peer announcing 4 GiB must not make us buffer it.
  if (length == 0 || length > max_length_) {
    return fail("frame length " + std::to_string(length) + " out of range 1.." +
                std::to_string(max_length_));
  }
  if (available - kFrameHeaderSize < length) return Result::NeedMore;
  const char* body = buffer_.data() + offset_ + kFrameHeaderSize;
  // allow_exceptions=false: a parse error yields a discarded value instead of a throw. The
  // parser rejects invalid UTF-8 inside strings, which covers DESIGN.md's "UTF-8 JSON".
  nlohmann::json value = nlohmann::json::parse(body, body + length, nullptr, false);
  if (value.is_discarded()) return fail("frame is not valid UTF-8 JSON");
  if (!value.is_object()) return fail("frame is not a JSON object");
  offset_ += kFrameHeaderSize + length;
  out = std::move(value);
  return Result::Frame;
}

}  // namespace tether::agent::control
