#pragma once
// The solvers' readers take file names, the model arrives as a string: it is written to an
// anonymous memory file (memfd) that the readers open as /proc/self/fd/N. Nothing touches the
// disk and nothing is left behind if the worker is killed.
#include <string>
#include <string_view>

namespace tether::solverd::worker {

class ModelFile {
 public:
  ModelFile() = default;
  ~ModelFile();
  ModelFile(const ModelFile&) = delete;
  ModelFile& operator=(const ModelFile&) = delete;

  // Creates the file with `text` in it. Returns false with a message for the client if the
  // memory file cannot be made (out of memory, no memfd).
  bool create(std::string_view text, std::string& message);

  // "/proc/self/fd/N", valid after create() succeeded.
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Replaces every occurrence of the memory file's path in a reader's message by "model", so
// that the message a client gets speaks of its model and not of our plumbing.
std::string withModelName(std::string message, const std::string& path);

// Splits text handed over in arbitrary pieces (GLPK's terminal hook, COIN message buffers) into
// lines, without their line ends; empty lines are dropped.
class LineSplitter {
 public:
  template <typename Sink>
  void feed(std::string_view chunk, Sink&& sink) {
    for (char c : chunk) {
      if (c == '\n') {
        flush(sink);
      } else if (c != '\r') {
        pending_.push_back(c);
      }
    }
  }
  template <typename Sink>
  void flush(Sink&& sink) {
    if (!pending_.empty()) sink(std::string_view(pending_));
    pending_.clear();
  }

 private:
  std::string pending_;
};

}  // namespace tether::solverd::worker
