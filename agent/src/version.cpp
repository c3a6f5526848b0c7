// Anchors the tether_agent library; the parts add their sources from agent/*.cmake.
namespace tether::agent {
const char* libraryVersion() { return TETHER_VERSION; }
}  // namespace tether::agent
