using System.CommandLine;
using ClipSharp.Data.Demo;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip data …</c>: building the data sets ClipSharp trains and evaluates on.</summary>
internal static class DataCommand
{
    public static Command Create()
    {
        var data = new Command("data", "Build training and evaluation data sets");
        data.Subcommands.Add(CreateBuildDemo());
        return data;
    }

    private static Command CreateBuildDemo()
    {
        var cache = new Option<string?>("--cache")
        {
            Description = "Folder for downloaded and unpacked packages (default: $CLIPSHARP_CACHE, else .cache/demo-corpus in the repository)",
        };
        var output = new Option<string?>("--output")
        {
            Description = "Corpus folder (default: corpus/ inside the cache folder)",
        };
        var force = new Option<bool>("--force")
        {
            Description = "Re-render all images and rewrite all splits even if the corpus is complete (downloads are reused)",
        };
        var seed = new Option<int>("--seed")
        {
            Description = "Seed of the held-out subgroup choice and the validation split",
            DefaultValueFactory = _ => DemoCorpusBuilder.DefaultSeed,
        };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print only the summary" };
        var command = new Command("build-demo",
            "Build the demo image-caption corpus (Tux Paint stamps, OpenClipArt, emoji by five artists) and its " +
            "train/val, zero-shot, distribution-shift and Fashion-MNIST splits from Debian and npm packages")
        {
            cache, output, force, seed, quiet,
        };
        command.SetAction(parse =>
        {
            var cacheDir = parse.GetValue(cache) is { Length: > 0 } c ? Path.GetFullPath(c) : DemoCorpusBuilder.DefaultCacheDir(Environment.CurrentDirectory);
            var outputDir = parse.GetValue(output) is { Length: > 0 } o ? Path.GetFullPath(o) : DemoCorpusBuilder.DefaultOutputDir(cacheDir);
            bool isQuiet = parse.GetValue(quiet);
            var options = new DemoCorpusOptions(cacheDir, outputDir, parse.GetValue(force), parse.GetValue(seed))
            {
                Log = isQuiet ? null : message => Console.Error.WriteLine(message),
            };
            DemoCorpusResult result;
            try
            {
                result = new DemoCorpusBuilder(options).Build();
            }
            catch (DemoCorpusException e)
            {
                throw new CliException(e.Message);
            }
            Console.Write(DemoCorpusBuilder.Summary(result.Manifest, outputDir));
            Console.WriteLine(result.WasComplete
                ? $"corpus was complete: verified in {result.Seconds:F1} s"
                : $"built in {result.Seconds:F1} s");
            return 0;
        });
        return command;
    }
}
