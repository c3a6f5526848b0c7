// tether-agent: cancels solver commands that existing services start under tether-run.
#include "daemon/agent_main.hpp"

int main(int argc, char** argv) { return tether::agent::daemon::agentMain(argc, argv); }
