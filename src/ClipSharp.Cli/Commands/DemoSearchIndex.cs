using System.Text;
using ClipSharp.Data.Readers;

namespace ClipSharp.Cli.Commands;

/// <summary>
/// The last stage of <c>clip demo</c>: every corpus image embedded by the trained model into
/// <c>corpus/demo.index.safetensors</c> (incremental on re-runs), with <c>demo.captions.csv</c> beside it (the first
/// caption of each image in the caption splits), and the one <c>clip serve</c> command that opens it.
/// </summary>
internal static class DemoSearchIndex
{
    public static string Build(string corpusDir, string model, string vocab, Func<string[], int> invoke)
    {
        string index = Path.Combine(corpusDir, "demo.index.safetensors");
        invoke(["index", Path.Combine(corpusDir, "images"), "--model", model, "-o", index, "-q"]);
        WriteCaptions(corpusDir, Path.Combine(corpusDir, "demo.captions.csv"));
        return $"./clip serve --index {Quote(index)} --vocab {Quote(vocab)}";
    }

    static void WriteCaptions(string corpusDir, string path)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var sb = new StringBuilder("image,caption\n");
        foreach (var split in new[] { "train.csv", "val.csv" })
        {
            var table = Path.Combine(corpusDir, split);
            if (!File.Exists(table)) continue;
            foreach (var pair in new CsvDataset(table, new TableColumns { ImageColumn = "image", CaptionColumn = "caption" }).Pairs())
            {
                if (pair.ImagePath is not { } image || pair.Captions.Count == 0 || !seen.Add(image)) continue;
                sb.Append(Csv(Path.GetRelativePath(corpusDir, image).Replace('\\', '/'))).Append(',').Append(Csv(pair.Captions[0])).Append('\n');
            }
        }
        ClipSharp.Training.AtomicFile.WriteAllText(path, sb.ToString());
    }

    static string Csv(string field) =>
        field.IndexOfAny([',', '"', '\n', '\r']) < 0 ? field : "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    static string Quote(string path) => path.Contains(' ', StringComparison.Ordinal) ? $"\"{path}\"" : path;
}
