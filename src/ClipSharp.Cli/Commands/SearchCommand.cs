using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ClipSharp.Evaluation;
using ClipSharp.Search;
using ClipSharp.Text;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip index</c> (embed an image collection) and <c>clip search</c> (rank it by a text or image query).</summary>
internal static class SearchCommand
{
    public static Command CreateIndex()
    {
        var paths = new Argument<string[]>("images") { Description = "Image files or folders (searched recursively)", Arity = ArgumentArity.OneOrMore };
        var model = Common.ModelOption();
        var config = Common.ConfigOption();
        var output = new Option<string>("--output", "-o") { Description = "Index file (.safetensors); an existing index there is updated: only new and changed images are embedded", Required = true };
        var rebuild = new Option<bool>("--rebuild") { Description = "Embed every image again, ignoring an existing index" };
        var batch = new Option<int>("--batch-size") { Description = "Images per forward pass", DefaultValueFactory = _ => 64 };
        var threads = new Option<int>("--workers") { Description = "Decoding threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No progress lines" };
        var ann = new Option<bool>("--ann") { Description = "Also build an approximate (HNSW) index beside it (NAME.index.ann), which clip search and clip serve then use: for large collections. Kept up to date by later runs once it exists" };
        var annDefaults = new AnnOptions();
        var connectivity = new Option<int>("--ann-connectivity") { Description = "HNSW neighbours per node (M)", DefaultValueFactory = _ => annDefaults.Connectivity };
        var expansionAdd = new Option<int>("--ann-expansion-add") { Description = "HNSW candidates per insertion (efConstruction)", DefaultValueFactory = _ => annDefaults.ExpansionAdd };
        var expansionSearch = new Option<int>("--ann-expansion-search") { Description = "HNSW candidates per query (ef), recorded as the default for searches", DefaultValueFactory = _ => annDefaults.ExpansionSearch };
        var storage = new Option<string>("--ann-storage") { Description = "Vectors in the graph: f16, f32 or i8", DefaultValueFactory = _ => "f16" };
        storage.AcceptOnlyFromAmong("f16", "f32", "i8");
        var cmd = new Command("index", "Embed a collection of images for clip search (incremental: unchanged images are not embedded again)")
            { paths, model, config, output, rebuild, batch, threads, quiet, ann, connectivity, expansionAdd, expansionSearch, storage };
        cmd.SetAction(r =>
        {
            string outPath = r.GetValue(output)!;
            IReadOnlyList<string> files;
            try { files = ImageIndex.ListFiles(r.GetValue(paths)!); }
            catch (FileNotFoundException e) { throw new CliException(e.Message); }
            if (files.Count == 0) throw new CliException("no image files found");
            // An unreadable previous index is refused before anything is overwritten (unless --rebuild says to replace it).
            using var previous = File.Exists(outPath) && !r.GetValue(rebuild) ? ImageIndex.Load(outPath) : null;
            string modelPath = r.GetValue(model)!;
            using var m = Common.LoadModel(modelPath, r.GetValue(config));
            var options = new FeatureExtractionOptions
            {
                BatchSize = Math.Max(1, r.GetValue(batch)), DecodeThreads = Math.Max(1, r.GetValue(threads)),
                Progress = r.GetValue(quiet) ? null : new EvalCommon.PlainProgress(),
            };
            using var index = ImageIndex.Build(m, files, out var report, previous, modelPath, options, configPath: r.GetValue(config));
            index.Save(outPath);
            foreach (var s in report.Skipped.Take(20)) Console.Error.WriteLine($"skipped {s.Id}: {s.Reason}");
            if (report.Skipped.Count > 20) Console.Error.WriteLine($"… and {report.Skipped.Count - 20} more skipped");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{outPath}: {index.Count} images ({report.Encoded} embedded, {report.Reused} unchanged, {report.Removed} removed, {report.Skipped.Count} skipped)"));
            string annPath = ApproximateIndex.PathFor(outPath);
            if (r.GetValue(ann) || File.Exists(annPath))
            {
                var annOptions = new AnnOptions
                {
                    Connectivity = r.GetValue(connectivity), ExpansionAdd = r.GetValue(expansionAdd), ExpansionSearch = r.GetValue(expansionSearch),
                    Storage = Enum.Parse<AnnStorage>(r.GetValue(storage)!, ignoreCase: true),
                };
                if (annOptions.Connectivity < 2 || annOptions.ExpansionAdd < 1 || annOptions.ExpansionSearch < 1)
                    throw new CliException("--ann-connectivity must be at least 2, --ann-expansion-add and --ann-expansion-search at least 1");
                AnnIndexing.Update(index, annPath, annOptions, r.GetValue(quiet));
            }
            return 0;
        });
        return cmd;
    }

    public static Command CreateSearch()
    {
        var queries = new Argument<string[]>("queries") { Description = "Text queries (each ranked separately)", Arity = ArgumentArity.ZeroOrMore };
        var indexPath = new Option<string>("--index", "-i") { Description = "Index written by clip index (with --server: the name of one of the server's indexes)" };
        var server = new Option<string?>("--server") { Description = "Ask a running clip serve at this URL (e.g. http://127.0.0.1:8080) instead of loading the index and model here" };
        var model = Common.ModelOption(required: false);
        model.Description = "Checkpoint (default: the one the index was built with); must be the same model";
        var config = Common.ConfigOption();
        var vocab = Common.VocabOption();
        var image = new Option<string[]>("--image") { Description = "Query by example: rank the collection by similarity to this image (repeatable)" };
        var template = new Option<string?>("--template") { Description = "Put each text query into a prompt, e.g. \"a photo of {}.\"" };
        var top = new Option<int>("--top", "-k") { Description = "Results per query", DefaultValueFactory = _ => 10 };
        var json = new Option<bool>("--json") { Description = "Print JSON: [{query, hits: [{path, score}]}]" };
        var exact = new Option<bool>("--exact") { Description = "Rank every image exactly even when an approximate index (NAME.index.ann, from clip index --ann) is beside the index" };
        var cmd = new Command("search", "Find the images of an index that best match text queries or example images")
            { queries, indexPath, server, model, config, vocab, image, template, top, json, exact };
        cmd.SetAction(r =>
        {
            var texts = r.GetValue(queries) ?? [];
            var images = r.GetValue(image) ?? [];
            if (texts.Length == 0 && images.Length == 0) throw new CliException("give at least one text query or --image");
            int literalFrom = texts.Length - SimilarityCommand.AfterDoubleDash(r);
            for (int i = 0; i < literalFrom; i++)
                if (texts[i].Length > 1 && texts[i][0] == '-')
                    throw new CliException($"search: '{texts[i]}' is not an option of search (to search for it as text, put it after --)");
            if (texts.FirstOrDefault(string.IsNullOrWhiteSpace) is not null)
                throw new CliException("search: a text query is empty; give the words to search for");
            if (r.GetValue(template) is { } tpl && !ZeroShot.PromptSets.HasPlaceholder(tpl))
                throw new CliException($"--template '{tpl}' has no {{}} placeholder for the query (e.g. \"a photo of {{}}.\")");
            int k = r.GetValue(top);
            if (k < 1) throw new CliException("--top must be at least 1");
            if (r.GetValue(server) is { } url)
            {
                var remote = RemoteSearch.Run(url, r.GetValue(indexPath), texts, images, r.GetValue(template), k);
                Print(remote, r.GetValue(json));
                return 0;
            }
            if (r.GetValue(indexPath) is null) throw new CliException("give --index FILE (or --server URL)");
            using var index = ImageIndex.Load(r.GetValue(indexPath)!);
            string modelPath = r.GetValue(model) ?? index.ModelPath
                ?? throw new CliException("the index does not record its checkpoint; pass --model");
            // With the index's own checkpoint comes the config it was built with, unless another is given.
            string? configPath = r.GetValue(config) ?? (r.GetValue(model) is null ? index.ConfigPath : null);
            using var m = Common.LoadModel(modelPath, configPath);
            try { index.CheckModel(m); }
            catch (InvalidOperationException e) { throw new CliException($"{modelPath}: {e.Message}"); }
            ClipTokenizer? tokenizer = texts.Length > 0 ? Common.LoadTokenizer(m, r.GetValue(vocab)) : null;
            // An approximate index beside it is used unless --exact; one built from other embeddings is ignored with a note.
            string? note = null;
            using var approximate = r.GetValue(exact) ? null : ApproximateIndex.OpenBeside(r.GetValue(indexPath)!, index, out note);
            if (note is not null) Console.Error.WriteLine($"clip: note: {note}");
            IReadOnlyList<SearchHit> Rank(TorchSharp.torch.Tensor e) => approximate is null ? index.Search(e, k) : approximate.Search(index, e, k);
            var results = new List<(string Query, IReadOnlyList<SearchHit> Hits)>();
            foreach (var q in texts)
            {
                using var e = index.EmbedText(m, tokenizer!, q, r.GetValue(template));
                results.Add((q, Rank(e)));
            }
            foreach (var path in images)
            {
                if (!File.Exists(path)) throw new CliException($"image not found: {path}");
                using var e = index.EmbedImage(m, path);
                results.Add(("image:" + path, Rank(e)));
            }
            Print(results, r.GetValue(json));
            return 0;
        });
        return cmd;
    }

    static void Print(IReadOnlyList<(string Query, IReadOnlyList<SearchHit> Hits)> results, bool json)
    {
        if (json)
        {
            var doc = results.Select(x => new { query = x.Query, hits = x.Hits.Select(h => new { path = h.Path, score = h.Score }) });
            Console.WriteLine(JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }));
            return;
        }
        foreach (var (q, hits) in results)
        {
            Console.WriteLine(q);
            int rank = 1;
            foreach (var h in hits) Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {rank++,3}. {h.Score:0.0000}  {h.Path}"));
        }
    }
}
