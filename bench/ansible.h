// Ansible over a TestCluster's sshd hosts, for the comparisons of the
// benchmarks (issue 9: "Ansible's best configuration (forks 20, pipelining,
// warm ControlPersist) on the same hosts in the same run").
//
//   BenchAnsible a(cluster);
//   if (!a.installed()) { puts(BenchAnsible::kInstallHint); ... }
//   a.WriteInventory({{"m00", a.Host(address, port, {{"level1", script}})}, ...});
//   a.WritePlaybook("converge.yml", "- hosts: all\n  tasks: ...");
//   std::string error = a.RunPlaybook("converge.yml");  // "" on success
//
// The configuration, in a private directory (ANSIBLE_CONFIG, ANSIBLE_HOME):
// forks = 20, pipelining = True, gather_facts off in the playbooks,
// ssh_args "-o ControlMaster=auto -o ControlPersist=900s" (Ansible's default
// minus compression, which only costs CPU on loopback, and a persist time
// longer than the run, so connections stay warm between runs: warm them with
// one untimed run first), strict host key checking against the cluster's
// known_hosts, python3 on the machines. The destructor closes the
// ControlPersist masters (local ssh processes).
//
// Thread-safety: not thread-safe.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::bench {

class BenchAnsible {
 public:
  static constexpr const char* kInstallHint =
      "ansible-playbook is not installed, so the comparison with Ansible is skipped; "
      "install it with `apt-get install ansible-core` (Debian, Ubuntu) or "
      "`pipx install ansible-core`, then run the benchmark again";

  explicit BenchAnsible(th::TestCluster& cluster)
      : cluster_(cluster), playbook_(FindInPath("ansible-playbook")) {
    if (playbook_.empty()) return;
    dir_ = std::make_unique<th::TempDir>();
    std::filesystem::create_directories(dir_->Sub("cp"));
    std::filesystem::create_directories(dir_->Sub("home"));
    th::WriteFile(dir_->Sub("ansible.cfg"),
                  "[defaults]\nforks = 20\ndeprecation_warnings = False\n"
                  "interpreter_python = /usr/bin/python3\nlocal_tmp = " +
                      dir_->Sub("local") +
                      "\n\n[ssh_connection]\npipelining = True\n"
                      "ssh_args = -o ControlMaster=auto -o ControlPersist=900s\n"
                      "control_path = " +
                      dir_->Sub("cp/%%C") + "\n");
  }

  ~BenchAnsible() {
    if (!dir_) return;
    for (size_t i = 0; i < cluster_.size(); ++i) {
      th::SshHost& h = cluster_.host(i);
      RunBounded({"ssh", "-o", "ControlPath=" + dir_->Sub("cp/%C"), "-p", std::to_string(h.port()),
                  "-O", "exit", h.user() + "@" + h.address()},
                 {}, dir_->Sub("ssh_exit.out"), milliseconds(5000), nullptr);
    }
  }

  BenchAnsible(const BenchAnsible&) = delete;
  BenchAnsible& operator=(const BenchAnsible&) = delete;

  bool installed() const { return !playbook_.empty(); }
  std::string Sub(const std::string& name) const { return dir_->Sub(name); }

  // One host's inventory entry: its address and port, and `vars` as !unsafe
  // strings (Jinja leaves them alone).
  static std::string Host(const std::string& address, int port,
                          const std::map<std::string, std::string>& vars) {
    std::string e =
        "      ansible_host: " + address + "\n      ansible_port: " + std::to_string(port) + "\n";
    for (const auto& [k, v] : vars) e += "      " + k + ": !unsafe " + YamlQuote(v) + "\n";
    return e;
  }

  // Writes inventory.yml: the connection variables every host shares, then
  // `hosts` (name -> Host(...)).
  void WriteInventory(const std::vector<std::pair<std::string, std::string>>& hosts) {
    std::string inv =
        "all:\n  vars:\n    ansible_user: " + cluster_.host(0).user() +
        "\n    ansible_ssh_private_key_file: " + cluster_.client_key_path() +
        "\n    ansible_ssh_common_args: '-o UserKnownHostsFile=" + cluster_.known_hosts_path() +
        " -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null'\n"
        "    ansible_python_interpreter: /usr/bin/python3\n  hosts:\n";
    for (const auto& [name, entry] : hosts) inv += "    " + name + ":\n" + entry;
    th::WriteFile(dir_->Sub("inventory.yml"), inv);
  }

  void WritePlaybook(const std::string& name, const std::string& text) {
    th::WriteFile(dir_->Sub(name), text);
  }

  // Runs a playbook with -f 20, bounded by `timeout`. Returns "" on success,
  // else the exit status and the play recap.
  std::string RunPlaybook(const std::string& name, milliseconds timeout = milliseconds(600000)) {
    std::string out;
    const int rc =
        RunBounded({playbook_, "-i", dir_->Sub("inventory.yml"), "-f", "20", dir_->Sub(name)},
                   {"ANSIBLE_CONFIG=" + dir_->Sub("ansible.cfg"),
                    "ANSIBLE_HOME=" + dir_->Sub("home"), "ANSIBLE_NOCOLOR=1"},
                   dir_->Sub("playbook.out"), timeout, &out);
    if (rc == 0) return "";
    const size_t recap = out.find("PLAY RECAP");
    const size_t fatal = out.find("fatal:");
    return "ansible-playbook " + name + " exit " + std::to_string(rc) + ": " +
           out.substr(fatal != std::string::npos ? fatal : (recap == std::string::npos ? 0 : recap),
                      800);
  }

 private:
  th::TestCluster& cluster_;
  std::string playbook_;
  std::unique_ptr<th::TempDir> dir_;
};

}  // namespace clusterctl::bench
