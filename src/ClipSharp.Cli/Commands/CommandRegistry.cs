using System.CommandLine;

namespace ClipSharp.Cli.Commands;

/// <summary>The list of top-level sub-commands, in the order `clip --help` shows them.</summary>
internal static class CommandRegistry
{
    public static IEnumerable<Command> All()
    {
        yield return BenchCommand.Create();
    }
}
