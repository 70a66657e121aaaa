using System.CommandLine;
using ClipSharp.Export;

namespace ClipSharp.Cli.Commands;

/// <summary>
/// <c>clip export onnx -m CKPT [--config CFG] [--vocab V] -o DIR</c>: the model as ONNX (vision_model.onnx, text_model.onnx)
/// with its vocabulary, preprocessing and configuration beside the graphs, for the ClipSharp.Onnx backend or any ONNX runtime.
/// </summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var cmd = new Command("export", "Export a model for deployment without libtorch");
        cmd.Subcommands.Add(CreateOnnx());
        return cmd;
    }

    static Command CreateOnnx()
    {
        var model = Common.ModelOption();
        var config = Common.ConfigOption();
        var vocab = Common.VocabOption();
        var output = new Option<string>("--output", "-o") { Description = "Folder that receives the .onnx files and the JSON and vocabulary beside them", Required = true };
        var cmd = new Command("onnx", "vision_model.onnx (pixel_values → image_embeds) and text_model.onnx (input_ids → text_embeds), opset 17, dynamic batch, " +
                                      "plus the vocabulary, preprocessor_config.json and clip_config.json")
        { model, config, vocab, output };
        cmd.SetAction(r =>
        {
            var outDir = r.GetValue(output)!;
            if (File.Exists(outDir)) throw new CliException($"--output {outDir} is a file; give a folder");
            // The whole checkpoint and its tokenizer are validated before anything is written.
            using var m = Common.LoadModel(r.GetValue(model)!, r.GetValue(config));
            var tokenizer = Common.LoadTokenizer(m, r.GetValue(vocab));
            var files = ClipOnnxExporter.Export(m, outDir, tokenizer);
            foreach (var f in files) Console.WriteLine(f);
            Console.Error.WriteLine($"exported {m.Config} to {outDir} (ONNX opset {Modeling.OnnxExportLayout.Opset})");
            return 0;
        });
        return cmd;
    }
}
