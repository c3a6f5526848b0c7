#pragma once
// GLPK pieces: ownership of a problem object, the terminal hook that turns GLPK's printing
// into lines, and reading a model with glp_read_lp / glp_read_mps.
#include "tether/solverd/worker/protocol.hpp"

#include <glpk.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace tether::solverd::worker {

struct GlpkProblemDeleter {
  void operator()(glp_prob* p) const { glp_delete_prob(p); }
};
using GlpkProblem = std::unique_ptr<glp_prob, GlpkProblemDeleter>;

// While alive, everything GLPK prints on this thread goes to `sink` line by line instead of
// stdout (glp_term_hook is per thread in GLPK 5). The previous hook is not restored: there is
// none in this program.
class GlpkTermCapture {
 public:
  using Sink = std::function<void(std::string_view)>;
  explicit GlpkTermCapture(Sink sink);
  ~GlpkTermCapture();
  GlpkTermCapture(const GlpkTermCapture&) = delete;
  GlpkTermCapture& operator=(const GlpkTermCapture&) = delete;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

// Reads with glp_read_lp (CPLEX LP) or glp_read_mps (free MPS, which also reads fixed MPS whose
// names have no spaces). Returns false with GLPK's own message.
bool readGlpkProblem(std::string_view text, ModelFormat format, GlpkProblem& out,
                     std::string& message);

}  // namespace tether::solverd::worker
