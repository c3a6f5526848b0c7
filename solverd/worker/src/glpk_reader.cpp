// Reading models with GLPK's readers, for the GLPK backend.
#include "glpk_support.hpp"
#include "model_file.hpp"

#include <vector>

namespace tether::solverd::worker {

struct GlpkTermCapture::State {
  Sink sink;
  LineSplitter splitter;
};

GlpkTermCapture::GlpkTermCapture(Sink sink) : state_(std::make_unique<State>()) {
  state_->sink = std::move(sink);
  glp_term_hook(
      [](void* info, const char* s) {
        auto* state = static_cast<State*>(info);
        state->splitter.feed(s, state->sink);
        return 1;  // nonzero: GLPK prints nothing itself
      },
      state_.get());
}

GlpkTermCapture::~GlpkTermCapture() {
  glp_term_hook(nullptr, nullptr);
  state_->splitter.flush(state_->sink);
}

bool readGlpkProblem(std::string_view text, ModelFormat format, GlpkProblem& out,
                     std::string& message) {
  ModelFile file;
  if (!file.create(text, message)) return false;
  std::vector<std::string> lines;
  GlpkProblem problem(glp_create_prob());
  int rc = 0;
  {
    GlpkTermCapture capture([&lines](std::string_view line) { lines.emplace_back(line); });
    rc = format == ModelFormat::Lp ? glp_read_lp(problem.get(), nullptr, file.path().c_str())
                                   : glp_read_mps(problem.get(), GLP_MPS_FILE, nullptr,
                                                  file.path().c_str());
  }
  if (rc == 0 && format == ModelFormat::Mps) {
    // GLPK reads the RHS of the objective row as the objective's constant; CoinMpsIO, CPLEX and
    // most writers take it as the constant with its sign changed. One model file must mean one
    // objective whatever the solver, so GLPK's reading is brought in line.
    glp_set_obj_coef(problem.get(), 0, -glp_get_obj_coef(problem.get(), 0));
  }
  if (rc == 0 && glp_get_num_cols(problem.get()) == 0) {
    lines.emplace_back("the model has no variables");
    rc = 1;
  }
  if (rc != 0) {
    // GLPK's complaints name the place, "FILE:LINE: what"; the other lines are progress
    // ("Reading problem data from ...", "Problem: NAME"). Keep the complaints if there are any.
    const std::string place = file.path() + ":";
    std::string joined;
    std::string all;
    for (const auto& line : lines) {
      std::string& to = line.rfind(place, 0) == 0 ? joined : all;
      if (!to.empty()) to += '\n';
      to += line;
    }
    if (joined.empty()) joined = std::move(all);
    if (joined.empty()) joined = "the model could not be read";
    message = withModelName(std::move(joined), file.path());
    return false;
  }
  out = std::move(problem);
  return true;
}

}  // namespace tether::solverd::worker
