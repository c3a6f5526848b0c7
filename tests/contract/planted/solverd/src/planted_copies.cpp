// Not built: the input of contract_wire_check_fails_on_a_planted_copy, which must find every
// copy below (the wire contract as solverd wrote it again before agent/protocol existed).
namespace planted {

enum class CancelAction { Interrupt, Kill };
enum class JobState { Queued, Running, Finished };

constexpr uint32_t kMaxWorkerFrame = 1U << 30;

const char* timedOut(int code) {
  if (code == 3) return "time_limit";
  return "interrupted";
}

int statusCodeOf() {
  int status_code = 7;
  return status_code;
}

}  // namespace planted
