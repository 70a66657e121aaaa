using System.CommandLine;

namespace ClipSharp.Cli.Commands;

/// <summary>The list of top-level sub-commands, in the order `clip --help` shows them.</summary>
internal static class CommandRegistry
{
    public static IEnumerable<Command> All()
    {
        yield return InfoCommand.Create();
        yield return ModelsCommand.Create();
        yield return TokenizeCommand.Create();
        yield return PreprocessCommand.Create();
        yield return EncodeCommand.Create();
        yield return SimilarityCommand.Create();
        yield return ConvertCommand.Create();
        yield return ExportCommand.Create();
        yield return DataCommand.Create();
        yield return DemoCommand.Create();
        yield return PredictCommand.Create();
        yield return SearchCommand.CreateIndex();
        yield return SearchCommand.CreateSearch();
        yield return ServeCommand.Create();
        yield return EvalCommand.Create();
        yield return TrainCommand.Create();
        yield return PlotCommand.Create();
        yield return DebugCommand.Create();
        yield return BenchCommand.Create();
    }
}
