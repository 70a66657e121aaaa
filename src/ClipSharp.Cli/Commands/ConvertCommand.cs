using System.CommandLine;
using ClipSharp.Checkpoints;
using ClipSharp.Text;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip convert CKPT --output OUT [--layout openai|hf]</c>: any loadable checkpoint to safetensors.</summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("checkpoint") { Description = "Any checkpoint ClipSharp can load" };
        var config = Common.ConfigOption();
        var output = new Option<string>("--output", "-o")
        {
            Description = "openai: a .safetensors file; hf: a folder that receives model.safetensors and config.json",
            Required = true,
        };
        var layout = new Option<string>("--layout") { Description = "openai (OpenAI/OpenCLIP keys) or hf (Hugging Face CLIPModel keys)", DefaultValueFactory = _ => "openai" };
        layout.AcceptOnlyFromAmong("openai", "hf");
        var cmd = new Command("convert", "Convert a checkpoint to safetensors in the OpenAI/OpenCLIP or Hugging Face layout") { input, config, output, layout };
        cmd.SetAction(r =>
        {
            // Loading validates the whole checkpoint (format, keys, shapes) before anything is written.
            using var model = Common.LoadModel(r.GetValue(input)!, r.GetValue(config));
            var outPath = r.GetValue(output)!;
            // A vocabulary the model declares (ClipSharp-trained weights) goes along, so that the converted weights find it.
            ClipTokenizer? vocabulary = null;
            if (model.Vocabulary is { IsBuiltIn: false })
            {
                try { vocabulary = VocabularyLocator.Load(null, model.CheckpointPath, model.Vocabulary); }
                catch (FileNotFoundException e) { Console.Error.WriteLine($"warning: {e.Message}; the converted weights record it, but it is not copied beside them"); }
            }
            if (r.GetValue(layout) == "openai")
            {
                model.Save(outPath);
                if (vocabulary is not null) VocabularyLocator.SaveBeside(vocabulary, Path.GetDirectoryName(Path.GetFullPath(outPath))!);
                Console.Error.WriteLine($"wrote {outPath} (OpenAI layout, config in metadata)");
            }
            else
            {
                Directory.CreateDirectory(outPath);
                using var openai = model.ExportStateDict();
                using var hf = HuggingFaceLayout.FromOpenAI(openai, model.Config);
                var meta = new Dictionary<string, string> { ["format"] = "pt" };
                if (model.Vocabulary is not null) meta[VocabularyRecord.MetadataKey] = model.Vocabulary.ToJson();
                SafeTensors.Save(Path.Combine(outPath, "model.safetensors"), hf, meta);
                HuggingFaceLayout.WriteConfig(model.Config, Path.Combine(outPath, "config.json"));
                if (vocabulary is not null) VocabularyLocator.SaveBeside(vocabulary, outPath);
                Console.Error.WriteLine($"wrote {outPath}/model.safetensors and config.json (Hugging Face CLIPModel layout)");
            }
            return 0;
        });
        return cmd;
    }
}
