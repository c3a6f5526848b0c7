// Reading models with COIN-OR's readers (CoinLpIO, CoinMpsIO), for the CBC and CLP backends.
#include "coin_support.hpp"
#include "model_file.hpp"

#include <CoinError.hpp>
#include <CoinLpIO.hpp>
#include <CoinMpsIO.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tether::solverd::worker {
namespace {

// COIN message lines start with an id like "Coin3002W": the last letter is the severity.
// A refused model is explained by its warnings and errors; the progress lines ("At line 5
// COLUMNS") only add noise.
bool isWarningOrError(std::string_view line) {
  if (line.size() < 9 || line.substr(0, 4) != "Coin") return false;
  return line[8] == 'W' || line[8] == 'E';
}

std::string joinMessage(const std::vector<std::string>& lines, const std::string& extra) {
  std::vector<std::string> kept;
  for (const auto& line : lines) {
    if (isWarningOrError(line)) kept.push_back(line);
  }
  if (kept.empty() && extra.empty()) kept = lines;
  std::string out;
  for (const auto& line : kept) {
    if (!out.empty()) out += '\n';
    out += line;
  }
  if (!extra.empty()) {
    if (!out.empty()) out += '\n';
    out += extra;
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  if (out.empty()) out = "the model could not be read";
  return out;
}

// CoinLpIO and CoinMpsIO have the same accessors but no common base.
template <typename Reader>
void extract(const Reader& reader, CoinProblem& out) {
  const int n = reader.getNumCols();
  const int m = reader.getNumRows();
  out.matrix = *reader.getMatrixByCol();
  out.col_lower.assign(reader.getColLower(), reader.getColLower() + n);
  out.col_upper.assign(reader.getColUpper(), reader.getColUpper() + n);
  out.objective.assign(reader.getObjCoefficients(), reader.getObjCoefficients() + n);
  out.row_lower.assign(reader.getRowLower(), reader.getRowLower() + m);
  out.row_upper.assign(reader.getRowUpper(), reader.getRowUpper() + m);
  out.is_integer.resize(static_cast<size_t>(n));
  out.col_names.resize(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) {
    out.is_integer[static_cast<size_t>(j)] = reader.isInteger(j) ? 1 : 0;
    const char* name = reader.columnName(j);
    out.col_names[static_cast<size_t>(j)] = name != nullptr ? std::string(name) : std::string("C").append(std::to_string(j));
  }
}

bool readLp(const std::string& path, CoinProblem& out, std::vector<std::string>& lines,
            std::string& error) {
  LineHandler handler([&lines](std::string_view line) { lines.emplace_back(line); });
  CoinLpIO reader;
  reader.passInMessageHandler(&handler);
  // readLp(const char*) fails on /proc/self/fd/N in CoinUtils 2.11 ("Unable to open file")
  // although the file opens; the FILE* variant reads it, and closes it (the reader owns it).
  FILE* file = std::fopen(path.c_str(), "re");
  if (file == nullptr) {
    error = std::string("cannot open the model: ") + std::strerror(errno);
    return false;
  }
  try {
    reader.readLp(file);
  } catch (const CoinError& e) {
    error = e.message();
    return false;
  }
  if (reader.getNumCols() == 0 || reader.getMatrixByCol() == nullptr) {
    error = "the model has no variables";
    return false;
  }
  extract(reader, out);
  // CoinLpIO 2.11 keeps the file's objective constant as is (not with the MPS sign) and flips
  // only the coefficients of a maximization; checked against a model with a constant.
  out.objective_constant = reader.objectiveOffset();
  if (reader.wasMaximization()) {
    out.maximize = true;
    for (double& c : out.objective) c = -c;
  }
  return true;
}

bool readMps(const std::string& path, CoinProblem& out, std::vector<std::string>& lines,
             std::string& error) {
  LineHandler handler([&lines](std::string_view line) { lines.emplace_back(line); });
  CoinMpsIO reader;
  reader.passInMessageHandler(&handler);
  int errors = 0;
  try {
    // An empty extension: the path is used as given (no ".mps" appended).
    errors = reader.readMps(path.c_str(), "");
  } catch (const CoinError& e) {
    error = e.message();
    return false;
  }
  if (errors != 0) {
    if (errors < 0) error = "not an MPS file";
    return false;
  }
  if (reader.getNumCols() == 0 || reader.getMatrixByCol() == nullptr) {
    error = "the model has no variables";
    return false;
  }
  extract(reader, out);
  // MPS: the right-hand side of the objective row is the constant with its sign changed.
  out.objective_constant = -reader.objectiveOffset();
  return true;
}

// CoinLpIO 2.11 reads past its buffers on some bytes outside ASCII text (found by
// tests/solverd/worker_fuzz_readers.cpp: a negative-size memcpy in CoinLpIO::fscanfLpIO after a
// 0xFF byte), and the COIN readers are C-string based, so a NUL would cut a line short. LP and
// MPS files are ASCII text: anything else is refused here, before a COIN reader sees it.
bool isAsciiText(std::string_view text, std::string& error) {
  int line = 1;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      ++line;
      continue;
    }
    const bool space = c == '\t' || c == '\r' || c == '\f' || c == '\v';
    if ((c < 0x20 && !space) || c >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", c);
      error = "line " + std::to_string(line) + ": byte " + hex +
              " is not allowed: LP and MPS models are ASCII text";
      return false;
    }
  }
  return true;
}

// CPLEX LP files end with "End". GLPK warns and reads on without it; CoinLpIO 2.11 loops
// forever at the end of a file that stops inside Generals or Binaries (found by the fuzz
// target) and misreads one that stops inside Bounds. So a missing End is supplied.
bool endsWithEnd(std::string_view text) {
  size_t last = text.find_last_not_of(" \t\r\n\f\v");
  if (last == std::string_view::npos || last < 2) return false;
  size_t first = text.find_last_of(" \t\r\n\f\v", last);
  first = first == std::string_view::npos ? 0 : first + 1;
  std::string_view word = text.substr(first, last + 1 - first);
  if (word.size() != 3) return false;
  return (word[0] == 'e' || word[0] == 'E') && (word[1] == 'n' || word[1] == 'N') &&
         (word[2] == 'd' || word[2] == 'D');
}

// CoinLpIO 2.11 reads out of bounds while it looks for the objective of a file that does not
// open with one (found by the fuzz target: "ant2:00008\nBoudn- End" crashes it, and the clp and
// cbc programs with it). GLPK refuses such a file too ("'minimize' or 'maximize' keyword
// missing"); here it is refused before CoinLpIO sees it.
bool startsLikeLp(std::string_view text, std::string& error) {
  size_t at = 0;
  while (at < text.size()) {
    at = text.find_first_not_of(" \t\r\n\f\v", at);
    if (at == std::string_view::npos) break;
    if (text[at] == '\\') {  // a comment line
      at = text.find('\n', at);
      continue;
    }
    size_t end = text.find_first_of(" \t\r\n\f\v", at);
    std::string word(text.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
    for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    static constexpr std::string_view kSenses[] = {"minimize", "minimise", "minimum", "min",
                                                   "maximize", "maximise", "maximum", "max"};
    for (auto sense : kSenses) {
      if (word == sense) return true;
    }
    break;
  }
  error = "line 1: 'minimize' or 'maximize' keyword missing: a CPLEX LP model opens with its objective";
  return false;
}

// CoinMpsIO 2.11 dereferences NULL in CoinMpsCardReader::nextField when a file does not open
// with its NAME or ROWS card (found by the fuzz target: "RHSRENAMA\n\nATA\n..." crashes it,
// and the clp and cbc programs with it). That much structure is checked here first; what the
// reader still crashes on is caught by the worker's reader guard (worker.cpp).
bool startsLikeMps(std::string_view text, std::string& error) {
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    std::string_view line = text.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    at = end == std::string_view::npos ? text.size() : end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos || line[0] == '*') continue;
    if (line.substr(0, 4) == "NAME" || line.substr(0, 4) == "ROWS") return true;
    break;
  }
  error = "an MPS model starts with a NAME or ROWS card";
  return false;
}

}  // namespace

int LineHandler::print() {
  std::string_view text(messageBuffer());
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty()) sink_(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return 0;
}

int CoinProblem::integers() const {
  return static_cast<int>(std::count(is_integer.begin(), is_integer.end(), 1));
}

bool readCoinProblem(std::string_view text, ModelFormat format, CoinProblem& out,
                     std::string& message) {
  if (!isAsciiText(text, message)) return false;
  if (format == ModelFormat::Mps && !startsLikeMps(text, message)) return false;
  if (format == ModelFormat::Lp && !startsLikeLp(text, message)) return false;
  ModelFile file;
  if (format == ModelFormat::Lp && !endsWithEnd(text)) {
    std::string completed(text);
    completed += "\nEnd\n";
    if (!file.create(completed, message)) return false;
  } else if (!file.create(text, message)) {
    return false;
  }
  std::vector<std::string> lines;
  std::string error;
  CoinProblem problem;
  bool ok = format == ModelFormat::Lp ? readLp(file.path(), problem, lines, error)
                                      : readMps(file.path(), problem, lines, error);
  if (!ok) {
    message = withModelName(joinMessage(lines, error), file.path());
    return false;
  }
  out = std::move(problem);
  return true;
}

}  // namespace tether::solverd::worker
