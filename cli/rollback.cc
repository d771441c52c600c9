// clusterctl rollback [--to REV | --steps N] [-m MSG] [--apply]: undo a change
// through git. A new commit on the branch gets the tree of an earlier applied
// revision; history is never rewritten. The revisions rolled back are
// quarantined in the data directory (controller/quarantine.h).
#include <cstdlib>
#include <iostream>

#include "base/clock.h"
#include "cli/commands.h"
#include "cli/remote.h"
#include "controller/quarantine.h"
#include "reconcilers/observer.h"
#include "store/revisions.h"
#include "store/store.h"

namespace clusterctl::cli {
namespace {

struct RollbackOptions {
  std::string to;
  int steps = 0;
  std::string message;
  bool apply = false;
};

int RunRollback(Globals* g, const RollbackOptions& o) {
  if (o.to.empty() == (o.steps <= 0)) {
    return ReportError(*g, Status::Invalid("give exactly one of --to REV or --steps N "
                                           "(e.g. clusterctl rollback --steps 1)"));
  }
  // The applied history, newest first, one entry per commit.
  auto store = store::Store::OpenReadOnly(g->data_dir);
  if (!store.ok()) return ReportError(*g, store.status());
  store::RevisionLog log(store->get());
  auto history = log.History(0);
  if (!history.ok()) return ReportError(*g, history.status());
  std::vector<store::RevisionRecord> applied;
  for (const auto& r : *history) {
    if (!r.Applied()) continue;
    bool seen = false;
    for (const auto& a : applied) seen |= a.commit == r.commit;
    if (!seen) applied.push_back(r);
  }
  if (applied.size() < 2) {
    return ReportError(*g, Status::NotFound("fewer than two revisions have been applied from " +
                                            g->data_dir + "; nothing to roll back to"));
  }

  auto source = g->OpenSource();
  if (!source.ok()) return ReportError(*g, source.status());

  size_t index = 0;
  if (o.steps > 0) {
    index = static_cast<size_t>(o.steps);
    if (index >= applied.size()) {
      return ReportError(*g,
                         Status::NotFound("only " + std::to_string(applied.size() - 1) +
                                          " earlier applied revision(s); see clusterctl history"));
    }
  } else {
    auto resolved = (*source)->Resolve(o.to);
    if (!resolved.ok()) return ReportError(*g, resolved.status());
    while (index < applied.size() && applied[index].commit != resolved->commit) ++index;
    if (index == applied.size()) {
      return ReportError(
          *g, Status::NotFound(resolved->Short() + " was never applied; roll back to a revision "
                                                   "listed by clusterctl history"));
    }
    if (index == 0) {
      return ReportError(*g, Status::Invalid(resolved->Short() + " is the revision in force"));
    }
  }
  const store::RevisionRecord& target = applied[index];
  controller::Quarantine q;
  q.target_commit = target.commit;
  std::string rolled_back;
  for (size_t i = 0; i < index; ++i) {
    q.commits.insert(applied[i].commit);
    rolled_back += (rolled_back.empty() ? "" : ", ") + applied[i].commit.substr(0, 7);
  }
  auto head = (*source)->Resolve("");
  if (head.ok() && head->commit != target.commit) {
    q.commits.insert(head->commit);  // Also a head that was never applied (rejected).
  }

  const std::string actor = CurrentActor();
  const std::string message = controller::RollbackMessage(
      "Roll back to " + target.commit.substr(0, 7) + ": " + target.message + "\n\n" +
          (o.message.empty() ? "Rolled back with clusterctl rollback by " + actor + "."
                             : o.message) +
          "\n\nRolled back revisions: " + rolled_back,
      target.commit);
  desired_state::CommitSigner signer;
  if (Status s = controller::CommitSignerOf(g->config, &signer); !s.ok()) {
    return ReportError(*g, s);
  }
  std::string push_error;
  const CommitAuthor author = CurrentAuthor();
  auto commit = (*source)->CommitTreeOf(target.commit, message, author.name, author.email,
                                        &push_error, signer);
  if (!commit.ok()) return ReportError(*g, commit.status());
  q.rollback_commit = commit->commit;
  q.created_ms = WallClockMs();
  if (Status s = controller::WriteQuarantine(g->data_dir, q); !s.ok()) return ReportError(*g, s);

  if (g->json) {
    std::cout << nlohmann::json{{"rollback_commit", commit->commit},
                                {"target", target.commit},
                                {"quarantined", q.commits},
                                {"pushed", push_error.empty()},
                                {"push_error", push_error}}
                     .dump()
              << "\n";
  } else {
    std::cout << "commit " << commit->Short() << " restores the tree of "
              << target.commit.substr(0, 7) << " (" << target.message << ")\n"
              << "quarantined: " << rolled_back << "\n";
    if (!push_error.empty()) {
      std::cout << "the push was refused (" << push_error << "): the commit waits on branch "
                << "clusterctl/rollback-" << commit->Short()
                << " for you to merge; clusterd keeps the restored state in force meanwhile\n";
    }
  }
  if (!o.apply) return kExitOk;
  if (UseServer(*g)) {
    auto r = CallServer(*g, "POST", "/api/v1/sync");
    if (!r.ok()) return ReportError(*g, r.status());
    if (!g->json) std::cout << "clusterd at " << ServerUrl(*g) << " applies it now\n";
    return kExitOk;
  }
  return ApplyRevision(g, commit->commit, audit::Trigger::kRollback);
}

}  // namespace

CommandFn SetupRollback(CLI::App* sub, Globals* g) {
  auto o = std::make_shared<RollbackOptions>();
  sub->add_option("--to", o->to, "An earlier applied revision (see clusterctl history)")
      ->type_name("REV");
  sub->add_option("--steps", o->steps, "Go back N applied revisions")->type_name("N");
  sub->add_option("-m,--message", o->message, "Why (goes into the commit message)")
      ->type_name("MSG");
  sub->add_flag("--apply", o->apply, "Converge right away");
  sub->footer(
      "Writes a new commit on the branch whose tree equals the earlier revision's, authored\n"
      "by you ($GIT_AUTHOR_NAME/$GIT_AUTHOR_EMAIL), signed with repo.signingKey when the\n"
      "config sets one (required when repo.verify is on), and pushes it when the repository is\n"
      "remote. History is never rewritten. The rolled-back revisions are quarantined:\n"
      "clusterd never applies them again, even if the push is refused, until a newer\n"
      "commit arrives. Example: clusterctl rollback --steps 1 -m \"ollama 0.5 breaks tools\"");
  return [g, o] { return RunRollback(g, *o); };
}

}  // namespace clusterctl::cli
