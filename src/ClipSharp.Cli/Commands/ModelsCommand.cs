using System.CommandLine;
using ClipSharp.Hub;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip models list|download|info</c>: the pretrained table and the caches.</summary>
internal static class ModelsCommand
{
    public static Command Create()
    {
        var models = new Command("models", "Pretrained weights by name: the table, downloads and the caches (HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE, HF_TOKEN)");
        models.Subcommands.Add(CreateList());
        models.Subcommands.Add(CreateDownload());
        models.Subcommands.Add(CreateInfo());
        return models;
    }

    static Argument<string> NameArgument() => new("name")
    {
        Description = "ARCH:TAG (ViT-B-32:openai), an architecture alone for its OpenAI weights, hf-hub:org/name[@revision] or local-dir:PATH",
    };

    static Command CreateList()
    {
        var arch = new Argument<string?>("architecture") { Description = "Only this architecture's tags", Arity = ArgumentArity.ZeroOrOne };
        var cachedOnly = new Option<bool>("--cached") { Description = "Only entries whose weights are cached" };
        var cmd = new Command("list", "List the pretrained table (ARCH:TAG names), marking what is cached; makes no request") { arch, cachedOnly };
        cmd.SetAction(r =>
        {
            var options = PretrainedOptions.FromEnvironment();
            IEnumerable<PretrainedWeights> entries = PretrainedModels.All;
            if (r.GetValue(arch) is { } a)
            {
                var tags = PretrainedModels.TagsOf(a);
                if (tags.Count == 0) throw new CliException($"'{a}' is not an architecture in the table; known: {string.Join(", ", PretrainedModels.Architectures)}");
                entries = tags.Select(t => PretrainedModels.Find(a, t)!);
            }
            var rows = entries.Select(e => (Entry: e, Cached: PretrainedResolver.FindCached(e.Name, null, options))).ToList();
            if (r.GetValue(cachedOnly)) rows = rows.Where(x => x.Cached is not null).ToList();
            int w = Math.Max(4, rows.Select(x => x.Entry.Name.Length).DefaultIfEmpty(0).Max());
            int hw = Math.Max(14, rows.Select(x => x.Entry.HubRepository.Length).DefaultIfEmpty(0).Max());
            Console.WriteLine($"{"name".PadRight(w)}  {"hub repository".PadRight(hw)}  {"activation",-10}  {"url",-3}  cached");
            foreach (var (e, cached) in rows)
            {
                string where = cached is null ? "-" : cached.StartsWith(options.HubCacheDir, StringComparison.Ordinal) ? "yes (hub cache)" : "yes (url cache)";
                Console.WriteLine($"{e.Name.PadRight(w)}  {e.HubRepository.PadRight(hw)}  {(e.QuickGelu ? "QuickGELU" : "GELU"),-10}  {(e.Url is null ? "-" : "yes"),-3}  {where}");
            }
            Console.WriteLine($"{rows.Count} entries. Hugging Face cache: {options.HubCacheDir}; release URLs: {options.UrlCacheDir}.");
            Console.WriteLine("Any other hub repository in OpenCLIP's or the transformers layout: hf-hub:org/name; a local folder: local-dir:PATH.");
            return 0;
        });
        return cmd;
    }

    static Command CreateDownload()
    {
        var name = NameArgument();
        var cmd = new Command("download", "Download a pretrained model into the caches (nothing when cached) and print the path to load") { name };
        cmd.SetAction(r =>
        {
            var resolved = PretrainedResolver.Resolve(r.GetValue(name)!, null, PretrainedOptions.FromEnvironment(), new DownloadProgressPrinter(Console.Error));
            foreach (var note in resolved.Notes) Console.Error.WriteLine($"clip: note: {note}");
            Console.Error.WriteLine($"{resolved.Name}: from {resolved.Source}");
            Console.WriteLine(resolved.CheckpointPath);
            return 0;
        });
        return cmd;
    }

    static Command CreateInfo()
    {
        var name = NameArgument();
        var local = new Option<bool>("--no-remote") { Description = "Do not ask the hub for the sizes of files that are not cached" };
        var cmd = new Command("info", "Show a name's sources, cache paths and file sizes") { name, local };
        cmd.SetAction(r =>
        {
            var options = PretrainedOptions.FromEnvironment();
            var info = PretrainedResolver.InspectAsync(r.GetValue(name)!, null, options, querySizes: !r.GetValue(local)).GetAwaiter().GetResult();
            Console.WriteLine($"name:          {info.Name}");
            if (info.Entry is { } e)
            {
                Console.WriteLine($"architecture:  {e.Architecture}, {(e.QuickGelu ? "QuickGELU" : "exact GELU")}");
                if (e.Mean is { } m && e.Std is { } s) Console.WriteLine($"normalisation: mean ({m.R}, {m.G}, {m.B}), std ({s.R}, {s.G}, {s.B})");
                if (e.Url is { } url) Console.WriteLine($"release URL:   {url}{(e.UrlSha256 is { } sha ? $" (SHA-256 {sha}{(sha.Length < 64 ? "…" : "")})" : "")}");
                if (e.Note is { } note) Console.WriteLine($"note:          {note}");
            }
            if (info.HubRepository is { } repo)
            {
                Console.WriteLine($"hub:           {options.Endpoint}/{repo} (revision {info.Revision})");
                Console.WriteLine($"hub cache:     {info.RepositoryCacheDir}");
            }
            Console.WriteLine($"model folder:  {info.ModelFolder}{(Directory.Exists(info.ModelFolder) ? "" : " (not made yet)")}");
            Console.WriteLine("files:");
            foreach (var f in info.Files)
            {
                string size = f.Size is long n ? DownloadProgressPrinter.Size(n) : "?";
                string state = f.CachedPath is null ? "not cached" : f.CachedPath;
                Console.WriteLine($"  {f.Origin}  {f.File}  {size}  {state}");
            }
            var weights = info.Files.Where(f => f.CachedPath is not null && (f.File.EndsWith(".safetensors", StringComparison.Ordinal) || f.File.EndsWith(".bin", StringComparison.Ordinal) || f.File.EndsWith(".pt", StringComparison.Ordinal) || f.File.EndsWith(".pth", StringComparison.Ordinal)));
            Console.WriteLine(weights.Any() ? "cached: yes" : "cached: no (clip models download " + info.Name + ")");
            return 0;
        });
        return cmd;
    }
}
