using System.CommandLine;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip eval</c>: the evaluation suite (zero-shot, retrieval, linear probe, few-shot, robustness).</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var cmd = new Command("eval", "Evaluate a checkpoint the way the CLIP paper and CLIP_benchmark do; each writes JSON and Markdown reports");
        cmd.Subcommands.Add(EvalZeroShotCommand.Create());
        cmd.Subcommands.Add(EvalRetrievalCommand.Create());
        cmd.Subcommands.Add(EvalLinearProbeCommand.Create());
        cmd.Subcommands.Add(EvalFewShotCommand.Create());
        cmd.Subcommands.Add(EvalRobustnessCommand.Create());
        cmd.Subcommands.Add(EvalThroughputCommand.Create());
        return cmd;
    }
}
