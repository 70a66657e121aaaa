using System.Globalization;
using ClipSharp.Export.OnnxIr;
using ClipSharp.Modeling;
using ClipSharp.Text;
using Google.Protobuf;

namespace ClipSharp.Export;

/// <summary>Options of <see cref="ClipOnnxExporter.Export"/>.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>
    /// A graph whose weights exceed this many bytes keeps them in a file beside it (<c>NAME.onnx.data</c>, ONNX external
    /// data): a protobuf message cannot exceed 2 GB. Default 1.5 GiB, so ViT-B and ViT-L towers stay single files.
    /// </summary>
    public long ExternalDataThresholdBytes { get; init; } = 3L << 29;
}

/// <summary>
/// Writes a loaded CLIP model as ONNX (opset 17): <c>vision_model.onnx</c> and <c>text_model.onnx</c> with a dynamic
/// batch axis and the weights as initializers, plus the vocabulary, the preprocessing and the configuration beside
/// them (see <see cref="OnnxExportLayout"/>). The graphs compute what ClipSharp's TorchSharp forward computes, for
/// every architecture it loads (ViT with QuickGELU or GELU and any head or MLP width, the modified ResNet with its
/// BatchNorms folded, any resolution); ONNX Runtime runs them through the ClipSharp.Onnx package.
/// </summary>
public static class ClipOnnxExporter
{
    /// <summary>Exports <paramref name="model"/> into <paramref name="directory"/> (created if missing) and returns the files written.</summary>
    /// <param name="model">A loaded model (float32 or bf16 weights; the graphs are float32).</param>
    /// <param name="directory">The output folder; files of the same names are replaced.</param>
    /// <param name="tokenizer">The model's tokenizer (default: <see cref="ClipModel.LoadTokenizer"/>); its vocabulary is copied beside the graphs.</param>
    /// <param name="options">Export options.</param>
    /// <exception cref="VocabularyMismatchException">The tokenizer does not fit the model.</exception>
    public static IReadOnlyList<string> Export(ClipModel model, string directory, ClipTokenizer? tokenizer = null, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(directory);
        options ??= new OnnxExportOptions();
        tokenizer ??= model.LoadTokenizer();
        model.CheckVocabulary(tokenizer);
        Directory.CreateDirectory(directory);
        var written = new List<string>();

        float logitScale;
        using (TorchSharp.torch.no_grad()) logitScale = model.LogitScale.to(TorchSharp.torch.ScalarType.Float32).item<float>();
        var metadata = new Dictionary<string, string>
        {
            ["clipsharp.config"] = model.Config.ToJson(),
            ["clipsharp.logit_scale"] = logitScale.ToString("R", CultureInfo.InvariantCulture),
        };
        var graphs = new ClipOnnxGraphs(model);
        written.AddRange(WriteGraph(graphs.Vision(), directory, OnnxExportLayout.VisionModelFile, "CLIP image tower: pixel_values [batch, 3, R, R] → image_embeds [batch, D] (not normalised)", metadata, options));
        written.AddRange(WriteGraph(graphs.Text(), directory, OnnxExportLayout.TextModelFile, "CLIP text tower: input_ids [batch, context] → text_embeds [batch, D] (not normalised), pooled at argmax(input_ids)", metadata, options));

        written.Add(WriteText(directory, OnnxExportLayout.ConfigFile, model.Config.ToJson()));
        var pre = model.CreatePreprocessor().Options;
        written.Add(WriteText(directory, OnnxExportLayout.PreprocessorFile, OnnxExportLayout.PreprocessorJson(pre)));
        if (tokenizer.Vocabulary.IsBuiltIn)
        {
            string target = Path.Combine(directory, VocabularyLocator.BpeFileName);
            WriteAtomically(target, s => s.Write(ClipTokenizer.BuiltInBytes()));
            written.Add(target);
        }
        else
        {
            VocabularyLocator.SaveBeside(tokenizer, directory);
            written.AddRange(tokenizer.Vocabulary.Files.Select(f => Path.Combine(directory, f.Name)));
        }
        var manifest = new OnnxExportLayout { LogitScaleLog = logitScale, Vocabulary = tokenizer.Vocabulary };
        written.Add(WriteText(directory, OnnxExportLayout.ManifestFile, manifest.ToJson()));
        return written;
    }

    static IEnumerable<string> WriteGraph(OnnxGraph graph, string directory, string file, string doc, Dictionary<string, string> metadata, OnnxExportOptions options)
    {
        string target = Path.Combine(directory, file);
        string dataFile = file + ".data";
        bool external = graph.InitializerBytes > options.ExternalDataThresholdBytes;
        if (!external && File.Exists(Path.Combine(directory, dataFile))) File.Delete(Path.Combine(directory, dataFile));
        var model = graph.ToModel(doc, metadata, directory, external ? dataFile : null);
        WriteAtomically(target, s => model.WriteTo(s));
        return external ? [target, Path.Combine(directory, dataFile)] : [target];
    }

    static string WriteText(string directory, string file, string text)
    {
        string target = Path.Combine(directory, file);
        WriteAtomically(target, s => s.Write(System.Text.Encoding.UTF8.GetBytes(text + "\n")));
        return target;
    }

    static void WriteAtomically(string target, Action<Stream> write)
    {
        string tmp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(target))!, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var s = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write)) write(s);
            File.Move(tmp, target, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
