#pragma once
// tether-agent's main, kept in the library so that the binary's main.cpp is one line.
namespace tether::agent::daemon {
int agentMain(int argc, const char* const* argv);
// tether-run's main (tether_run.cpp).
int tetherRunMain(int argc, char** argv);
}  // namespace tether::agent::daemon
